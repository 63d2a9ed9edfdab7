package sim

import (
	"reflect"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/background"
)

// The gossipsub baseline runs pubsub's own defaults, so lowering the
// shipped mesh degree can never move the ratio a strategy is judged by;
// "default" runs the shipped configuration untouched.
func TestBaselineIsStockGossipSubAndDefaultIsShipped(t *testing.T) {
	sc := &scenario{}
	parse := func(name string) Strategy { return mustParseStrategies([]string{name})[0] }

	base := sc.nodeConfig(parse("gossipsub"), simNode{})
	stock := pubsub.DefaultGossipSubParams()
	g := base.Background.Gossip
	if g.D != stock.D || g.Dlo != stock.Dlo || g.Dhi != stock.Dhi || g.Dlazy != stock.Dlazy ||
		g.HeartbeatInterval != stock.HeartbeatInterval || g.HistoryLength != stock.HistoryLength || g.HistoryGossip != stock.HistoryGossip {
		t.Errorf("gossipsub baseline runs %+v, want pubsub's defaults %+v", g, stock)
	}
	if g.LazyAmongValidators || !g.FloodPublish {
		t.Errorf("gossipsub baseline: lazy %v, flood publish %v; want plain gossipsub with flood publish", g.LazyAmongValidators, g.FloodPublish)
	}
	if base.Routers != p2p.RoutersBackgroundOnly || base.Background.PubSub != background.GossipSub {
		t.Errorf("gossipsub baseline: routers %v, pubsub %s", base.Routers, base.Background.PubSub)
	}

	def := parse("default")
	if def.Name() != "default" || !def.Lazy || def.Ternary {
		t.Errorf("default strategy named %q, lazy %v, ternary %v; want the shipped lazy gossip and wide hops", def.Name(), def.Lazy, def.Ternary)
	}
	got, want := sc.nodeConfig(def, simNode{}), p2p.DefaultConfig()
	if got.Routers != want.Routers || !reflect.DeepEqual(got.Background.Gossip, want.Background.Gossip) ||
		got.RainTree.Mode != want.RainTree.Mode || got.RainTree.ACK != want.RainTree.ACK ||
		got.RainTree.LevelsPerHop != want.RainTree.LevelsPerHop || got.RainTree.WideMaxValidators != want.RainTree.WideMaxValidators ||
		got.Background.PubSub != want.Background.PubSub {
		t.Errorf("default runs routers %v, gossip %+v, mode %s, ack %v; want the shipped %v, %+v, %s, %v",
			got.Routers, got.Background.Gossip, got.RainTree.Mode, got.RainTree.ACK,
			want.Routers, want.Background.Gossip, want.RainTree.Mode, want.RainTree.ACK)
	}
}

// With --degree wiring each node dials only its bootstrap peers and its
// RainTree targets: connections stay well below the network's size, every
// live node still gets every broadcast with silent and down validators,
// and the run reports connections, copies by role and peak memory.
func TestNetworkWiredByDegreeStaysBoundedAndDelivers(t *testing.T) {
	cfg := smallNet("gossipsub", "default")
	cfg.Validators, cfg.FullNodes, cfg.Degree = 40, 20, 4
	cfg.SilentValidators, cfg.DownValidators = 4, 4
	if raceEnabled {
		cfg.Validators, cfg.FullNodes, cfg.SilentValidators, cfg.DownValidators = 16, 8, 2, 2
	}
	cfg.ConnSettle = -1 // count at once: the test checks the bound, not trimming
	res := runNet(t, cfg)
	n := cfg.Validators + cfg.FullNodes
	for _, s := range res.Strategies {
		if ratioOf(t, s) != 1 {
			t.Errorf("%s: delivery %v, want 1", s.Name, ratioOf(t, s))
		}
		c := s.ConnectionsPerNode
		if c == nil || c.P50 < 1 || c.Max >= n-1 || c.P50 > c.P99 || c.P99 > c.Max {
			t.Errorf("%s: connections per node %+v, want bounded below %d", s.Name, c, n-1)
		}
		p := s.PayloadCopiesPerNode
		if p == nil || p.Validator == nil || p.FullNode == nil || *p.Validator < 1 || *p.FullNode < 1 {
			t.Errorf("%s: payload copies per node %+v, want at least one per node and role", s.Name, p)
		}
		if s.PeakRSSBytes != nil && *s.PeakRSSBytes <= 0 {
			t.Errorf("%s: peak RSS %d", s.Name, *s.PeakRSSBytes)
		}
	}
}
