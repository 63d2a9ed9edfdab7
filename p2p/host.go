package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
)

// newHost builds the libp2p host a Module owns when Config.Host is nil: the
// node's key and listen addresses. Admission (resource manager) and
// retention (connection manager) options belong here too.
func newHost(cfg Config) (host.Host, error) {
	cm, err := NewConnManager(cfg.ConnManager)
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.ConnectionManager(cm), // the host closes it
		libp2p.Identity(cfg.Key.Private),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		announceOption(cfg.AnnounceAddrs),
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		_ = cm.Close()
		return nil, fmt.Errorf("creating libp2p host: %w", err)
	}
	return h, nil
}
