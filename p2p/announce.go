package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	ma "github.com/multiformats/go-multiaddr"
)

// parseAnnounce parses Config.AnnounceAddrs.
func parseAnnounce(addrs []string) ([]ma.Multiaddr, error) {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("announce address %q: %w", s, err)
		}
		if _, err := a.ValueForProtocol(ma.P_P2P); err == nil {
			return nil, fmt.Errorf("announce address %q: leave out the /p2p/<peer id> part", s)
		}
		out = append(out, a)
	}
	return out, nil
}

// announceOption makes the host advertise exactly the configured addresses
// (to identify, the DHT and peer records) instead of its listen addresses;
// with none configured it keeps libp2p's default.
func announceOption(addrs []string) libp2p.Option {
	as, err := parseAnnounce(addrs)
	if err != nil || len(as) == 0 { // Validate has reported a bad address
		return func(*libp2p.Config) error { return nil }
	}
	return libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return append([]ma.Multiaddr(nil), as...) })
}
