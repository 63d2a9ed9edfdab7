package p2p

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

// Connection manager defaults used by DefaultConfig.
const (
	DefaultConnLowWater      = 8
	DefaultConnHighWater     = 64
	DefaultConnGracePeriod   = 20 * time.Second
	DefaultConnSilencePeriod = 10 * time.Second
)

// ConnManagerConfig sizes go-libp2p's connection manager (connmgr), which
// every node runs. It never closes a protected peer: a validator's RainTree
// neighbours, gossip mesh peers (pubsub protects them) and the peers kept
// connected from the validator set. Everything else (configured bootstrap
// peers, which are only tagged, discovered peers, inbound dials,
// re-delegation dials) is trimmed, lowest value first, once the node has
// HighWater connections.
type ConnManagerConfig struct {
	// LowWater is how many unprotected connections a trim keeps; protected
	// ones are neither closed nor counted. Default 8: a trimmed validator
	// keeps its RainTree neighbours, its mesh and 8 more (about 52 at 1,000
	// validators); a trimmed full node its mesh of up to 12 and 8 more,
	// enough candidates for gossipsub to repair its mesh from.
	LowWater int
	// HighWater is the connection count, protected ones included, at which
	// the manager trims. Default 64: above a validator's RainTree neighbours
	// (42 at 3,000 validators) and mesh, far below go-libp2p's 192, so
	// memory per node stays bounded whatever the network's size.
	HighWater int
	// GracePeriod is how long a new connection is exempt from trimming.
	// Default 20s: enough for identify, pubsub's subscription exchange and
	// a first heartbeat to graft it into the mesh.
	GracePeriod time.Duration
	// SilencePeriod is how often the manager checks the count against
	// HighWater. Default 10s (go-libp2p's).
	SilencePeriod time.Duration
}

// DefaultConnManagerConfig returns the defaults documented on
// ConnManagerConfig.
func DefaultConnManagerConfig() ConnManagerConfig {
	return ConnManagerConfig{
		LowWater:      DefaultConnLowWater,
		HighWater:     DefaultConnHighWater,
		GracePeriod:   DefaultConnGracePeriod,
		SilencePeriod: DefaultConnSilencePeriod,
	}
}

func (c ConnManagerConfig) validate() error {
	switch {
	case c.LowWater <= 0 || c.HighWater < c.LowWater:
		return fmt.Errorf("connection manager: want 0 < LowWater <= HighWater, have %d and %d", c.LowWater, c.HighWater)
	case c.GracePeriod < 0:
		return fmt.Errorf("connection manager: GracePeriod %v must not be negative", c.GracePeriod)
	case c.SilencePeriod <= 0:
		return fmt.Errorf("connection manager: SilencePeriod %v must be positive", c.SilencePeriod)
	}
	return nil
}

// NewConnManager builds the connection manager c describes. A Module that
// creates its host installs one; give a host you build yourself (a mocknet
// host, say) one too, or nothing is ever trimmed and protection is moot.
func NewConnManager(c ConnManagerConfig) (*connmgr.BasicConnMgr, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	cm, err := connmgr.NewConnManager(c.LowWater, c.HighWater,
		connmgr.WithGracePeriod(c.GracePeriod), connmgr.WithSilencePeriod(c.SilencePeriod))
	if err != nil {
		return nil, fmt.Errorf("creating connection manager: %w", err)
	}
	return cm, nil
}
