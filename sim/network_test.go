package sim

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rainp2p/rainp2p/p2p"
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
	if ratioOf(t, cover) != 1 || cover.PayloadMessagesPerBroadcast != 8 || cover.DuplicatesPerNode != 0 {
		t.Errorf("cover: ratio %v, %v payload messages, %v duplicates; want 1, 8 (validators-1), 0",
			ratioOf(t, cover), cover.PayloadMessagesPerBroadcast, cover.DuplicatesPerNode)
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
	if ratioOf(t, gs) != 1 || gs.FullNodeDeliveryRatio == nil || *gs.FullNodeDeliveryRatio != 1 {
		t.Errorf("gossipsub: ratio %v, fullnode ratio %v; want 1, 1", ratioOf(t, gs), gs.FullNodeDeliveryRatio)
	}
	if gs.PayloadMessagesPerBroadcast < 12 {
		t.Errorf("gossipsub: %v payload messages per broadcast, want at least one per other node (12)", gs.PayloadMessagesPerBroadcast)
	}
}

func TestNetworkCoverPlusGossipSubSurvivesSilentValidators(t *testing.T) {
	cfg := smallNet("cover+gossipsub")
	cfg.SilentValidators = 3 // a third of the validators
	s := byName(t, runNet(t, cfg), "cover+gossipsub")
	if ratioOf(t, s) != 1 {
		t.Errorf("cover+gossipsub with 3/9 silent validators: ratio %v, want 1", ratioOf(t, s))
	}
}

// per_broadcast adds up to the strategy's summary: every reached target
// is counted once by the router that reached it first, and the slowest
// broadcast is the coverage maximum.
func TestNetworkPerBroadcastResultsAddUpToTheSummary(t *testing.T) {
	cfg := smallNet("cover", "cover+gossipsub")
	cfg.SilentValidators = 3
	res := runNet(t, cfg)
	for _, s := range res.Strategies {
		if len(s.PerBroadcast) != cfg.Broadcasts {
			t.Fatalf("%s: %d broadcasts listed, want %d", s.Name, len(s.PerBroadcast), cfg.Broadcasts)
		}
		var reached, targets int
		var slowest float64
		for j, b := range s.PerBroadcast {
			vias := 0
			for _, n := range b.FirstVia {
				vias += n
			}
			if vias != b.Reached || b.Reached > b.Targets {
				t.Errorf("%s broadcast %d: first_via %v sums to %d, reached %d of %d", s.Name, j, b.FirstVia, vias, b.Reached, b.Targets)
			}
			if wantRole := roleOf(simNode{validator: b.Origin < cfg.Validators}); b.OriginRole != wantRole {
				t.Errorf("%s broadcast %d: origin %d is a %s, want %s", s.Name, j, b.Origin, b.OriginRole, wantRole)
			}
			if b.ValidatorCoverageMS == nil || b.LastValidatorVia == nil || b.LastValidator == nil {
				t.Fatalf("%s broadcast %d reached no validator", s.Name, j)
			}
			if v := *b.LastValidator; v >= cfg.Validators || v == b.Origin {
				t.Errorf("%s broadcast %d: last validator %d is no validator target", s.Name, j, v)
			}
			if f := b.LastFullNode; f != nil && *f < cfg.Validators {
				t.Errorf("%s broadcast %d: last full node %d is a validator", s.Name, j, *f)
			}
			reached, targets = reached+b.Reached, targets+b.Targets
			slowest = max(slowest, *b.ValidatorCoverageMS)
		}
		if targets != s.Targets || reached != len(s.Curve) || slowest != s.ValidatorCoverageMS.Max {
			t.Errorf("%s: per broadcast %d reached of %d, slowest %v ms; summary %d of %d, %v ms",
				s.Name, reached, targets, slowest, len(s.Curve), s.Targets, s.ValidatorCoverageMS.Max)
		}
	}
	for _, b := range byName(t, res, "cover").PerBroadcast {
		if b.OriginRole != RoleValidator || b.FirstVia[string(p2p.RouterBackground)] != 0 || b.FullNodeCoverageMS != nil {
			t.Errorf("RainTree alone: %+v, want validator origins, no gossip and no full nodes", b)
		}
	}
}

func TestNetworkDownValidatorsAreNeitherOriginsNorTargets(t *testing.T) {
	cfg := smallNet("cover+ack")
	cfg.DownValidators = 2
	s := byName(t, runNet(t, cfg), "cover+ack")
	if s.Targets != 5*6 {
		t.Errorf("%d targets, want 5 broadcasts x 6 live non-origin validators", s.Targets)
	}
	if ratioOf(t, s) != 1 {
		t.Errorf("cover+ack with 2 down validators: ratio %v, want 1 (re-delegation)", ratioOf(t, s))
	}
	if s.Repairs == nil || s.Repairs.RainTreeRetries+s.Repairs.RainTreeGaveUp == 0 {
		t.Errorf("repairs %+v: the frames to the down validators are not counted", s.Repairs)
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
		"negative gossip settle":     func(c *NetConfig) { c.GossipSettle = -time.Second },
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
// strategies share topology and origins.
func TestNetworkDefaultStrategyAddsLittleToGossipSub(t *testing.T) {
	res := runNet(t, smallNet("gossipsub", "cover+gossipsub", "default"))
	gs := byName(t, res, "gossipsub")
	for _, name := range []string{"cover+gossipsub", "default"} {
		s := byName(t, res, name)
		if ratioOf(t, s) != 1 {
			t.Errorf("%s: ratio %v, want 1", name, ratioOf(t, s))
		}
		// The baseline is stock gossipsub (D=6, 1 s heartbeat).
		ratio := *s.PayloadBytesPerBroadcast / *gs.PayloadBytesPerBroadcast
		t.Logf("%s: %.2fx gossipsub's payload bytes", name, ratio)
		// The default gossips lazily among validators (ADR 0002): 0.3-0.4x
		// at 100-1,000 nodes in virtual time. Here, 13 nodes on a loaded
		// machine and 512-byte payloads, below gossipsub's IDONTWANT
		// threshold, it measured 0.66x; it must never cost more than stock
		// gossipsub. The eager variant without ACKs measured up to 1.28x
		// (issue 9 asked 1.25x of the then default).
		bound := map[string]float64{"default": 1.0, "cover+gossipsub": 1.5}[name]
		if ratio > bound {
			t.Errorf("%s: %.0f payload bytes per broadcast, %.2fx gossipsub's %.0f; want <= %.2fx",
				name, *s.PayloadBytesPerBroadcast, ratio, *gs.PayloadBytesPerBroadcast, bound)
		}
	}
}

// Lazy gossip among validators (background/lazy.go): RainTree carries the
// payload to validators, its leaves feed the full nodes, and the whole
// network gets every broadcast for well under stock gossipsub's bytes (0.6x
// at this size; see ADR 0002 for larger networks). Payloads of 2 KiB pass
// gossipsub's IDONTWANT threshold, as blocks do.
func TestNetworkLazyValidatorsCostWellUnderGossipSub(t *testing.T) {
	cfg := smallNet("gossipsub", "cover+ack+gossipsub+lazy", "cover+ack+gossipsub")
	cfg.Validators, cfg.FullNodes, cfg.PayloadSize = 18, 12, 2048
	res := runNet(t, cfg)
	gs, lazy, eager := byName(t, res, "gossipsub"), byName(t, res, "cover+ack+gossipsub+lazy"), byName(t, res, "cover+ack+gossipsub")
	for _, s := range []StrategyResult{gs, lazy, eager} {
		if ratioOf(t, s) != 1 {
			t.Errorf("%s: delivery ratio %v, want 1", s.Name, ratioOf(t, s))
		}
	}
	ratio := *lazy.PayloadBytesPerBroadcast / *gs.PayloadBytesPerBroadcast
	t.Logf("payload bytes per broadcast: gossipsub %.0f, lazy %.0f (%.2fx), eager %.0f",
		*gs.PayloadBytesPerBroadcast, *lazy.PayloadBytesPerBroadcast, ratio, *eager.PayloadBytesPerBroadcast)
	if ratio > 0.75 {
		t.Errorf("lazy: %.0f payload bytes per broadcast, %.2fx gossipsub's %.0f; want <= 0.75x",
			*lazy.PayloadBytesPerBroadcast, ratio, *gs.PayloadBytesPerBroadcast)
	}
	if *lazy.PayloadBytesPerBroadcast >= *eager.PayloadBytesPerBroadcast {
		t.Errorf("lazy %.0f payload bytes per broadcast, eager %.0f; lazy should cost less",
			*lazy.PayloadBytesPerBroadcast, *eager.PayloadBytesPerBroadcast)
	}
}

// Silent validators cut their subtrees off RainTree; gossip repairs them,
// through full nodes or, in a network of validators alone, through the
// IHAVE/IWANT validators still exchange under lazy gossip.
func TestNetworkShippedDefaultSurvivesThirtyPercentSilentValidators(t *testing.T) {
	for _, fullNodes := range []int{4, 0} {
		t.Run(fmt.Sprintf("%d full nodes", fullNodes), func(t *testing.T) {
			cfg := smallNet("default", "cover+ack+gossipsub")
			cfg.Validators, cfg.FullNodes, cfg.SilentValidators = 10, fullNodes, 3
			res := runNet(t, cfg)
			for _, name := range []string{"default", "cover+ack+gossipsub"} {
				if s := byName(t, res, name); ratioOf(t, s) != 1 {
					t.Errorf("%s with 3/10 silent validators: ratio %v, want 1", name, ratioOf(t, s))
				}
			}
		})
	}
}

// In virtual time (synctest), so a loaded machine cannot stretch the
// activity's sleeps past the quiet period.
func TestWaitQuietEndsOnQuietButNotWhileProgressing(t *testing.T) {
	const quiet = 60 * time.Millisecond
	ctx := context.Background()

	t.Run("quiet", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			end, err := waitQuiet(ctx, nil, func() int64 { return 7 }, quiet, start.Add(10*time.Second))
			if d := time.Since(start); err != nil || end != endQuiet || d < quiet || d > 2*time.Second {
				t.Errorf("waitQuiet = %v, %v after %v; want endQuiet after about %v", end, err, d, quiet)
			}
		})
	})

	t.Run("slow progress is waited for", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// Activity every quiet/2 for 6 quiet periods, then done.
			var n atomic.Int64
			done := make(chan struct{})
			go func() {
				for range 12 {
					time.Sleep(quiet / 2)
					n.Add(1)
				}
				close(done)
			}()
			start := time.Now()
			end, err := waitQuiet(ctx, done, n.Load, quiet, start.Add(10*time.Second))
			if d := time.Since(start); err != nil || end != endDone || d < 5*quiet {
				t.Errorf("waitQuiet = %v, %v after %v; want endDone after at least %v", end, err, d, 5*quiet)
			}
		})
	})

	t.Run("deadline bounds endless activity", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var n atomic.Int64
			activity := func() int64 { return n.Add(1) }
			start := time.Now()
			end, err := waitQuiet(ctx, nil, activity, quiet, start.Add(4*quiet))
			if d := time.Since(start); err != nil || end != endDeadline || d > 2*time.Second {
				t.Errorf("waitQuiet = %v, %v after %v; want endDeadline after about %v", end, err, d, 4*quiet)
			}
		})
	})

	t.Run("cancelled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := waitQuiet(cctx, nil, func() int64 { return 0 }, quiet, time.Now().Add(time.Second)); !errors.Is(err, context.Canceled) {
				t.Errorf("error = %v, want context.Canceled", err)
			}
		})
	})
}

func TestQuietPeriodCoversACKTimeoutAndHeartbeat(t *testing.T) {
	sc := &scenario{cfg: NetConfig{Latency: 5 * time.Millisecond}}
	parse := func(name string) Strategy { return mustParseStrategies([]string{name})[0] }
	if got := sc.quietPeriod(parse("reference")); got != minQuiet {
		t.Errorf("reference: %v, want %v", got, minQuiet)
	}
	if got := sc.quietPeriod(parse("cover+ack")); got <= 2*time.Second {
		t.Errorf("cover+ack: %v, want more than the 2s ACK timeout", got)
	}
	if got := sc.quietPeriod(parse("gossipsub")); got <= 700*time.Millisecond {
		t.Errorf("gossipsub: %v, want more than a 700ms heartbeat", got)
	}
	sc.cfg.Latency = 100 * time.Millisecond
	if got := sc.quietPeriod(parse("cover")); got != 500*time.Millisecond {
		t.Errorf("cover at 100ms latency: %v, want 5 latencies", got)
	}
}

// Targets behind silent validators are never reached by cover alone; the
// wait for each broadcast must end once the network is quiet, not at the
// timeout, and still count every delivery. One level per hop: two levels
// reach all nine validators straight from the origin.
func TestNetworkUnreachableTargetsDoNotWaitForTheTimeout(t *testing.T) {
	cfg := smallNet("cover+ternary")
	cfg.SilentValidators = 3
	cfg.BroadcastTimeout = 20 * time.Second
	start := time.Now()
	s := byName(t, runNet(t, cfg), "cover+ternary")
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("run took %v; the quiet period should end each broadcast long before the %v timeout", d, cfg.BroadcastTimeout)
	}
	if r := ratioOf(t, s); r >= 1 || r <= 0 {
		t.Errorf("cover with 3/9 silent validators: ratio %v, want in (0, 1) for the test to mean anything", r)
	}
}
