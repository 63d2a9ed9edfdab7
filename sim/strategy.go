package sim

import (
	"errors"
	"fmt"
	"strings"

	"github.com/rainp2p/rainp2p/p2p"
)

// ErrBadConfig wraps every invalid simulation input.
var ErrBadConfig = errors.New("invalid simulation config")

// Strategy is one way of broadcasting: a RainTree mode, a gossip router, or
// both. Its name lists the parts joined by '+', e.g. "cover+gossipsub".
type Strategy struct {
	// RainTree is "reference", "cover" or "" (no RainTree).
	RainTree string
	// ACK makes cover-mode senders re-delegate around down recipients.
	ACK bool
	// Gossip is "gossipsub", "randomsub", "floodsub" or "" (no gossip).
	Gossip string
	// Default runs p2p.DefaultConfig untouched: whatever a node ships
	// with. RainTree, ACK and Gossip then describe it.
	Default bool
	// Lazy turns on lazy gossip among validators
	// (background.GossipParams.LazyAmongValidators): validators stop
	// meshing with each other, and RainTree's leaves feed the full nodes.
	Lazy bool
	// Ternary runs RainTree one level per hop for every message
	// (raintree.Config.LevelsPerHop 1), instead of the default two levels
	// per hop for messages below PaceBytes.
	Ternary bool
	// Repair has full nodes repair the validators of their mesh a link
	// after the plan says they should have said they have a small message
	// (background.GossipParams.RepairSlack, off by default; repairSlack).
	Repair bool
}

// partDefault names the shipped configuration.
const partDefault = "default"

// DefaultStrategy is the strategy of p2p.DefaultConfig.
func DefaultStrategy() Strategy {
	c := p2p.DefaultConfig()
	s := Strategy{Default: true, Gossip: string(c.Background.PubSub)}
	if c.Routers != p2p.RoutersBackgroundOnly {
		s.RainTree, s.ACK = string(c.RainTree.Mode), c.RainTree.ACK
	}
	if c.Routers == p2p.RoutersRainTreeOnly {
		s.Gossip = ""
	}
	s.Lazy = c.Routers == p2p.RoutersBoth && c.Background.Gossip.LazyAmongValidators
	s.Ternary = c.RainTree.LevelsPerHop == 1
	return s
}

// Name is the canonical name: "default" for the shipped configuration,
// otherwise mode, then "ack", then the gossip router.
func (s Strategy) Name() string {
	if s.Default {
		return partDefault
	}
	var parts []string
	if s.RainTree != "" {
		parts = append(parts, s.RainTree)
	}
	if s.ACK {
		parts = append(parts, "ack")
	}
	if s.Gossip != "" {
		parts = append(parts, s.Gossip)
	}
	if s.Lazy {
		parts = append(parts, partLazy)
	}
	if s.Ternary {
		parts = append(parts, partTernary)
	}
	if s.Repair {
		parts = append(parts, partRepair)
	}
	return strings.Join(parts, "+")
}

// RainTreeOnly reports whether validators are the only nodes the strategy
// is meant to reach.
func (s Strategy) RainTreeOnly() bool { return s.Gossip == "" }

// Strategy name parts.
const (
	partReference = "reference"
	partCover     = "cover"
	partACK       = "ack"
	partGossipSub = "gossipsub"
	partRandomSub = "randomsub"
	partFloodSub  = "floodsub"
	partLazy      = "lazy"
	partTernary   = "ternary"
	partRepair    = "repair"
)

// NetworkStrategies are the strategies RunNetwork compares by default.
// "default" is what a node ships with (p2p.DefaultConfig, today
// cover+ack+gossipsub+lazy); "cover+gossipsub" runs both routers eagerly,
// without RainTree ACKs.
var NetworkStrategies = []string{
	"reference", "cover", "gossipsub", "randomsub", "floodsub",
	"reference+gossipsub", "cover+gossipsub", "default",
}

// PlanStrategies are the strategies RunPlan compares by default.
var PlanStrategies = []string{"reference", "cover", "cover+ack"}

// ParseStrategy parses a name such as "cover", "cover+ack+gossipsub",
// "floodsub" or "default" (the shipped configuration, see DefaultStrategy). Parts may come in any order; at most one RainTree mode and one
// gossip router, and "ack" only with "cover".
func ParseStrategy(name string) (Strategy, error) {
	if strings.EqualFold(strings.TrimSpace(name), partDefault) {
		return DefaultStrategy(), nil
	}
	var s Strategy
	fail := func(format string, args ...any) (Strategy, error) {
		return Strategy{}, fmt.Errorf("%w: strategy %q: %s", ErrBadConfig, name, fmt.Sprintf(format, args...))
	}
	for _, p := range strings.Split(strings.ToLower(strings.TrimSpace(name)), "+") {
		switch p = strings.TrimSpace(p); p {
		case partReference, partCover:
			if s.RainTree != "" {
				return fail("two RainTree modes")
			}
			s.RainTree = p
		case partACK:
			s.ACK = true
		case partLazy:
			s.Lazy = true
		case partTernary:
			s.Ternary = true
		case partRepair:
			s.Repair = true
		case partGossipSub, partRandomSub, partFloodSub:
			if s.Gossip != "" {
				return fail("two gossip routers")
			}
			s.Gossip = p
		default:
			return fail("unknown part %q (want reference, cover, ack, gossipsub, randomsub, floodsub, lazy, ternary or repair)", p)
		}
	}
	if s.Lazy && (s.RainTree == "" || s.Gossip != partGossipSub) {
		return fail("lazy needs a RainTree mode and gossipsub (validators gossip lazily because RainTree reaches them)")
	}
	if s.Repair && !s.Lazy {
		return fail("repair needs lazy (full nodes repair what RainTree should have brought their validators)")
	}
	if s.Ternary && s.RainTree != partCover {
		return fail("ternary needs cover mode (reference mode always runs one level per hop)")
	}
	if s.ACK && s.RainTree != partCover {
		return fail("ack needs cover mode (reference messages carry no span to re-delegate)")
	}
	return s, nil
}

// ParseStrategies parses a comma-separated list, rejecting duplicates.
func ParseStrategies(list string) ([]Strategy, error) {
	var out []Strategy
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		if strings.TrimSpace(name) == "" {
			continue
		}
		s, err := ParseStrategy(name)
		if err != nil {
			return nil, err
		}
		if seen[s.Name()] {
			return nil, fmt.Errorf("%w: strategy %q listed twice", ErrBadConfig, s.Name())
		}
		seen[s.Name()] = true
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no strategies", ErrBadConfig)
	}
	return out, nil
}

func mustParseStrategies(names []string) []Strategy {
	s, err := ParseStrategies(strings.Join(names, ","))
	if err != nil {
		panic(err)
	}
	return s
}
