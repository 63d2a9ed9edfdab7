//go:build race

package p2p_test

// crowdSize is how many throwaway peers the crowding test creates.
const crowdSize = 400
