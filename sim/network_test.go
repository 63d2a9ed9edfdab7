package sim

import (
	"context"
	"errors"
	"testing"
	"time"
)

// smallNet is a quick network: 9 validators, 4 full nodes, 5 broadcasts
// over 5ms links.
func smallNet(strategies ...string) NetConfig {
	return NetConfig{
		Validators:  9,
		FullNodes:   4,
		Broadcasts:  5,
		Strategies:  mustParseStrategies(strategies),
		Seed:        1,
		PayloadSize: 512,
		Latency:     5 * time.Millisecond,
	}
}

func runNet(t *testing.T, cfg NetConfig) Result {
	t.Helper()
	if testing.Short() {
		t.Skip("builds libp2p networks")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := RunNetwork(ctx, cfg, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func TestNetworkHealthyCoverAndGossipSubReachEveryone(t *testing.T) {
	res := runNet(t, smallNet("cover", "gossipsub"))
	cover := byName(t, res, "cover")
	if cover.DeliveryRatio != 1 || cover.PayloadMessagesPerBroadcast != 8 || cover.DuplicatesPerNode != 0 {
		t.Errorf("cover: ratio %v, %v payload messages, %v duplicates; want 1, 8 (validators-1), 0",
			cover.DeliveryRatio, cover.PayloadMessagesPerBroadcast, cover.DuplicatesPerNode)
	}
	if cover.FullNodeDeliveryRatio != nil {
		t.Errorf("cover: fullnode ratio %v, want nil for RainTree alone", *cover.FullNodeDeliveryRatio)
	}
	if cover.CoverageMS == nil || cover.CoverageMS.Max <= 0 || cover.PayloadBytesPerBroadcast == nil || *cover.PayloadBytesPerBroadcast < 8*512 {
		t.Errorf("cover: coverage %+v, payload bytes %v", cover.CoverageMS, cover.PayloadBytesPerBroadcast)
	}
	if len(cover.Curve) != cover.Targets || cover.Targets != 5*8 {
		t.Errorf("cover: %d curve points for %d targets, want 40", len(cover.Curve), cover.Targets)
	}

	gs := byName(t, res, "gossipsub")
	if gs.DeliveryRatio != 1 || gs.FullNodeDeliveryRatio == nil || *gs.FullNodeDeliveryRatio != 1 {
		t.Errorf("gossipsub: ratio %v, fullnode ratio %v; want 1, 1", gs.DeliveryRatio, gs.FullNodeDeliveryRatio)
	}
	if gs.PayloadMessagesPerBroadcast < 12 {
		t.Errorf("gossipsub: %v payload messages per broadcast, want at least one per other node (12)", gs.PayloadMessagesPerBroadcast)
	}
}

func TestNetworkCoverPlusGossipSubSurvivesSilentValidators(t *testing.T) {
	cfg := smallNet("cover+gossipsub")
	cfg.SilentValidators = 3 // a third of the validators
	s := byName(t, runNet(t, cfg), "cover+gossipsub")
	if s.DeliveryRatio != 1 {
		t.Errorf("cover+gossipsub with 3/9 silent validators: ratio %v, want 1", s.DeliveryRatio)
	}
}

func TestNetworkDownValidatorsAreNeitherOriginsNorTargets(t *testing.T) {
	cfg := smallNet("cover+ack")
	cfg.DownValidators = 2
	s := byName(t, runNet(t, cfg), "cover+ack")
	if s.Targets != 5*6 {
		t.Errorf("%d targets, want 5 broadcasts x 6 live non-origin validators", s.Targets)
	}
	if s.DeliveryRatio != 1 {
		t.Errorf("cover+ack with 2 down validators: ratio %v, want 1 (re-delegation)", s.DeliveryRatio)
	}
}

func TestNetworkRejectsBadInput(t *testing.T) {
	tests := map[string]func(*NetConfig){
		"negative full nodes":        func(c *NetConfig) { c.FullNodes = -1 },
		"down plus silent too many":  func(c *NetConfig) { c.DownValidators, c.SilentValidators = 5, 5 },
		"loss is unsupported":        func(c *NetConfig) { c.Loss = 0.01 },
		"loss out of range":          func(c *NetConfig) { c.Loss = 1.5 },
		"empty payload":              func(c *NetConfig) { c.PayloadSize = 0 },
		"negative latency":           func(c *NetConfig) { c.Latency = -time.Millisecond },
		"too many nodes":             func(c *NetConfig) { c.Validators = MaxNetworkNodes },
		"negative degree":            func(c *NetConfig) { c.Degree = -1 },
		"no broadcasts":              func(c *NetConfig) { c.Broadcasts = 0 },
		"every validator down":       func(c *NetConfig) { c.DownValidators = 9 },
		"negative broadcast timeout": func(c *NetConfig) { c.BroadcastTimeout = -time.Second },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := smallNet("cover")
			mutate(&cfg)
			_, err := RunNetwork(context.Background(), cfg, nil)
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error = %v, want ErrBadConfig", err)
			}
			if name == "loss is unsupported" && !errors.Is(err, ErrLossUnsupported) {
				t.Errorf("error = %v, want ErrLossUnsupported", err)
			}
		})
	}
}

// The non-timing targets for our default, in one run so that the
// two strategies share topology and origins.
func TestNetworkDefaultStrategyAddsLittleToGossipSub(t *testing.T) {
	res := runNet(t, smallNet("gossipsub", "cover+gossipsub", "cover+ack+gossipsub"))
	gs := byName(t, res, "gossipsub")
	for _, name := range []string{"cover+gossipsub", "cover+ack+gossipsub"} {
		s := byName(t, res, name)
		if s.DeliveryRatio != 1 {
			t.Errorf("%s: ratio %v, want 1", name, s.DeliveryRatio)
		}
		ratio := *s.PayloadBytesPerBroadcast / *gs.PayloadBytesPerBroadcast
		if ratio > 1.25 {
			t.Errorf("%s: %.0f payload bytes per broadcast, %.2fx gossipsub's %.0f; want <= 1.25x",
				name, *s.PayloadBytesPerBroadcast, ratio, *gs.PayloadBytesPerBroadcast)
		}
	}
}

func TestNetworkShippedDefaultSurvivesThirtyPercentSilentValidators(t *testing.T) {
	cfg := smallNet("cover+ack+gossipsub")
	cfg.Validators, cfg.SilentValidators = 10, 3
	if s := byName(t, runNet(t, cfg), "cover+ack+gossipsub"); s.DeliveryRatio != 1 {
		t.Errorf("cover+ack+gossipsub with 3/10 silent validators: ratio %v, want 1", s.DeliveryRatio)
	}
}
