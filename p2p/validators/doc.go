// Package validators describes the staked actors of a network: the
// Validator, the immutable sorted Set in force at a height, the JSON
// genesis file that lists them, and the Provider seam through which an
// embedding application supplies sets.
//
// It holds no network state; the module pushes sets into the routers.
package validators
