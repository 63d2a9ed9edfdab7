package localnet

import (
	"errors"
	"fmt"
	"time"

	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/raintree"
)

// ErrInvalidConfig wraps every configuration error.
var ErrInvalidConfig = errors.New("invalid localnet config")

// Defaults used by DefaultConfig.
const (
	DefaultValidators   = 4
	DefaultFullNodes    = 4
	DefaultBroadcasts   = 8
	DefaultUnicasts     = 4
	DefaultNetworkID    = "rainp2p-localnet"
	DefaultReadyTimeout = 30 * time.Second
	DefaultSettle       = 20 * time.Second
	DefaultGrace        = time.Second
	DefaultWarmup       = 1500 * time.Millisecond
	DefaultStopTimeout  = 5 * time.Second
)

// Config describes a local network and the traffic sent through it. Start
// from DefaultConfig; Validate reports the first problem.
type Config struct {
	// Binary is the rainp2p executable started once per node. Required.
	Binary string
	// Dir is where the network's temporary directory is created; empty
	// means the system temporary directory.
	Dir string
	// NetworkID is written to the genesis.
	NetworkID string

	// Validators is the size of the validator set, including the down and
	// silent ones; FullNodes is the number of non-validators.
	Validators, FullNodes int
	// DownValidators are in the validator set but never started.
	DownValidators int
	// SilentValidators run and receive but never forward (config silent).
	SilentValidators int

	// Mode is the RainTree planning rule: cover or reference.
	Mode string
	// PubSub is the background router: gossipsub, randomsub or floodsub.
	PubSub string
	// LogLevel is the nodes' log level (debug, info, warn, error).
	LogLevel string

	// Broadcasts is how many broadcasts are sent, alternating between
	// validator and full-node origins.
	Broadcasts int
	// Unicasts is how many unicasts are sent, cycling through the
	// validator→validator, validator→full node, full node→validator and
	// full node→full node pairs the network has.
	Unicasts int

	// ReadyTimeout bounds the wait for every node to start and connect.
	ReadyTimeout time.Duration
	// Warmup is a pause after readiness so gossip meshes form before the
	// first message.
	Warmup time.Duration
	// Settle bounds the wait for the expected deliveries; Grace is how long
	// the run keeps watching after they all arrived, to catch duplicates.
	Settle, Grace time.Duration
	// StopTimeout is how long a node has to exit after SIGTERM before it is
	// killed.
	StopTimeout time.Duration
	// Keep leaves the directory in place after Close.
	Keep bool
	// NetNS runs every node in its own Linux network namespace, with its
	// own address on a bridge (package netns), from homes written as
	// `rainp2p testnet` writes them. It needs iproute2 and CAP_NET_ADMIN
	// plus CAP_SYS_ADMIN, and at least one validator.
	NetNS bool
}

// DefaultConfig returns the network `rainp2p localnet` runs without flags:
// 4 validators and 4 full nodes. Binary is left empty.
func DefaultConfig() Config {
	return Config{
		NetworkID:    DefaultNetworkID,
		Validators:   DefaultValidators,
		FullNodes:    DefaultFullNodes,
		Mode:         string(raintree.ModeCover),
		PubSub:       string(background.GossipSub),
		LogLevel:     "info",
		Broadcasts:   DefaultBroadcasts,
		Unicasts:     DefaultUnicasts,
		ReadyTimeout: DefaultReadyTimeout,
		Warmup:       DefaultWarmup,
		Settle:       DefaultSettle,
		Grace:        DefaultGrace,
		StopTimeout:  DefaultStopTimeout,
	}
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.Binary == "":
		return fail("no rainp2p binary given")
	case c.NetworkID == "":
		return fail("network ID is empty")
	case c.Validators < 0:
		return fail("validators %d must not be negative", c.Validators)
	case c.FullNodes < 0:
		return fail("full nodes %d must not be negative", c.FullNodes)
	case c.Validators == 0 && c.FullNodes == 0:
		return fail("no nodes: want at least one validator or full node")
	case c.DownValidators < 0:
		return fail("down validators %d must not be negative", c.DownValidators)
	case c.SilentValidators < 0:
		return fail("silent validators %d must not be negative", c.SilentValidators)
	case c.DownValidators+c.SilentValidators > c.Validators:
		return fail("down (%d) plus silent (%d) validators exceed the %d validators", c.DownValidators, c.SilentValidators, c.Validators)
	case c.Validators-c.DownValidators+c.FullNodes == 0:
		return fail("every node is down: nothing to run")
	case c.Broadcasts < 0:
		return fail("broadcasts %d must not be negative", c.Broadcasts)
	case c.Unicasts < 0:
		return fail("unicasts %d must not be negative", c.Unicasts)
	case c.ReadyTimeout <= 0:
		return fail("ready timeout %v must be positive", c.ReadyTimeout)
	case c.Settle <= 0:
		return fail("settle timeout %v must be positive", c.Settle)
	case c.Warmup < 0 || c.Grace < 0 || c.StopTimeout < 0:
		return fail("warmup, grace and stop timeout must not be negative")
	}
	if _, err := raintree.ParseMode(c.Mode); err != nil || c.Mode == "" {
		return fail("mode %q: want %s or %s", c.Mode, raintree.ModeCover, raintree.ModeReference)
	}
	if _, err := background.ParsePubSubKind(c.PubSub); err != nil || c.PubSub == "" {
		return fail("background %q: want %s, %s or %s", c.PubSub, background.GossipSub, background.RandomSub, background.FloodSub)
	}
	if c.LogLevel != "" {
		switch c.LogLevel {
		case "debug", "info", "warn", "error":
		default:
			return fail("log level %q: want debug, info, warn or error", c.LogLevel)
		}
	}
	if c.NetNS && c.Validators < 1 {
		return fail("--netns needs at least one validator (its homes come from rainp2p testnet)")
	}
	if c.sendersNeeded() && c.senders() == 0 {
		return fail("no node can originate messages: every running validator is silent and there are no full nodes")
	}
	return nil
}

// live is the number of nodes that run.
func (c Config) live() int { return c.Validators - c.DownValidators + c.FullNodes }

// senders is the number of nodes that originate messages: running, not
// silent.
func (c Config) senders() int {
	return c.Validators - c.DownValidators - c.SilentValidators + c.FullNodes
}

func (c Config) sendersNeeded() bool { return c.Broadcasts > 0 || c.Unicasts > 0 }
