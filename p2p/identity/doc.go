// Package identity holds who a node is: its ed25519 key, the key file that
// stores it, and the 20-byte Address derived from the public key, with the
// conversions between addresses, public keys and libp2p peer IDs.
//
// It is not a registry of other nodes; the validator set (package
// validators) and the module's address book play that role.
package identity
