package home

import (
	"slices"
	"testing"

	"github.com/rainp2p/rainp2p/p2p/identity"
)

func TestDialAddrsPreferAnnounceAndExpandWildcards(t *testing.T) {
	k, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p2p := "/p2p/" + k.PeerID.String()
	tests := []struct {
		name        string
		cfg         Config
		want        string // must be among the addresses
		wantUnknown int
	}{
		{"announce addresses win", Config{ListenAddrs: []string{"/ip4/0.0.0.0/tcp/4001"}, AnnounceAddrs: []string{"/ip4/203.0.113.7/tcp/4001"}}, "/ip4/203.0.113.7/tcp/4001" + p2p, 0},
		{"0.0.0.0 becomes the interface addresses", Config{ListenAddrs: []string{"/ip4/0.0.0.0/tcp/4001"}}, "/ip4/127.0.0.1/tcp/4001" + p2p, 0},
		{"port 0 is unknown until the node runs", Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/7"}}, "/ip4/127.0.0.1/tcp/7" + p2p, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addrs, unknown, err := DialAddrs(tt.cfg, k.PeerID)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range addrs {
				got = append(got, a.String())
			}
			if !slices.Contains(got, tt.want) || len(unknown) != tt.wantUnknown {
				t.Fatalf("got %v (unknown %v), want %s among them and %d unknown", got, unknown, tt.want, tt.wantUnknown)
			}
		})
	}
}
