package netns

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrUnavailable means namespaces cannot be built here; the error says why.
var ErrUnavailable = errors.New("network namespaces unavailable")

// Prefix is the private range node addresses come from.
var Prefix = netip.MustParsePrefix("10.77.0.0/16")

// MaxNodes bounds a fabric (addresses 10.77.x.1 to 10.77.x.250).
const MaxNodes = 250 * 250

// NodeIP is the address of node i.
func NodeIP(i int) netip.Addr {
	b := Prefix.Addr().As4()
	b[2], b[3] = byte(i/250), byte(i%250+1)
	return netip.AddrFrom4(b)
}

func checkCount(n int) error {
	if n < 1 || n > MaxNodes {
		return fmt.Errorf("netns: %d nodes: want 1 to %d", n, MaxNodes)
	}
	return nil
}
