package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// newHost builds the libp2p host a Module owns when Config.Host is nil: the
// node's key and listen addresses, admission (the resource manager with
// cfg.Resources, refusals counted in rc) and retention (the connection
// manager).
func newHost(cfg Config, rc *rcmgrCounters) (host.Host, error) {
	cm, err := NewConnManager(cfg.ConnManager)
	if err != nil {
		return nil, err
	}
	rm, err := newResourceManager(cfg.Resources, cfg.NetworkID, cfg.MaxMessageSize+wire.FrameOverhead, rc)
	if err != nil {
		_ = cm.Close()
		return nil, fmt.Errorf("creating resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.ConnectionManager(cm), // the host closes it
		libp2p.ResourceManager(rm),   // and this
		libp2p.Identity(cfg.Key.Private),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		announceOption(cfg.AnnounceAddrs),
	}
	if cfg.PrometheusRegisterer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.PrometheusRegisterer))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		_ = cm.Close()
		_ = rm.Close()
		return nil, fmt.Errorf("creating libp2p host: %w", err)
	}
	return h, nil
}
