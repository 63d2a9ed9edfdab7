package home

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// DialAddrs are the addresses, ending in /p2p/<id>, at which other nodes
// reach the node configured by cfg: its announce addresses when set;
// otherwise its listen addresses, with 0.0.0.0 and :: expanded to this
// machine's interface addresses. Addresses with port 0 are chosen when the
// node starts, so they are returned in unknown instead: ask the running
// node (its admin status) for those.
func DialAddrs(cfg Config, id peer.ID) (addrs []ma.Multiaddr, unknown []string, err error) {
	suffix, err := ma.NewMultiaddr("/p2p/" + id.String())
	if err != nil {
		return nil, nil, fmt.Errorf("peer ID %s: %w", id, err)
	}
	src := cfg.AnnounceAddrs
	if len(src) == 0 {
		src = cfg.ListenAddrs
	}
	var listen []ma.Multiaddr
	for _, s := range src {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, nil, fmt.Errorf("config address %q: %w", s, err)
		}
		if portZero(a) {
			unknown = append(unknown, s)
			continue
		}
		listen = append(listen, a)
	}
	if len(cfg.AnnounceAddrs) == 0 && len(listen) > 0 {
		ifaces, err := manet.InterfaceMultiaddrs()
		if err != nil {
			return nil, nil, fmt.Errorf("listing interface addresses: %w", err)
		}
		if listen, err = manet.ResolveUnspecifiedAddresses(listen, ifaces); err != nil {
			return nil, nil, fmt.Errorf("expanding listen addresses: %w", err)
		}
	}
	for _, a := range listen {
		addrs = append(addrs, a.Encapsulate(suffix))
	}
	return addrs, unknown, nil
}

func portZero(a ma.Multiaddr) bool {
	for _, p := range []int{ma.P_TCP, ma.P_UDP} {
		if v, err := a.ValueForProtocol(p); err == nil && v == "0" {
			return true
		}
	}
	return false
}
