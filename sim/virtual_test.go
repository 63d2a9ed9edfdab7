package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"math"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

// Flags of TestVirtualSim, given after -args. Without any, the test runs a
// small configuration quick enough for CI and checks it.
var virtualFlags = struct {
	validators, fullnodes, broadcasts, silent, down, size, degree *int
	strategies, jsonPath                                          *string
	seed                                                          *uint64
	latency, latencyMax, timeout, gossipSettle                    *time.Duration
	uplinkMbps, downlinkMbps                                      *float64
}{
	validators: flag.Int("validators", 8, "TestVirtualSim: number of validators"),
	fullnodes:  flag.Int("fullnodes", 4, "TestVirtualSim: number of full nodes"),
	broadcasts: flag.Int("broadcasts", 3, "TestVirtualSim: broadcasts per strategy"),
	silent:     flag.Int("silent-validators", 0, "TestVirtualSim: validators that receive but never forward"),
	down:       flag.Int("down-validators", 0, "TestVirtualSim: validators in the set that never start"),
	size:       flag.Int("size", 1024, "TestVirtualSim: payload bytes per broadcast"),
	degree: flag.Int("degree", DefaultDegree, "TestVirtualSim: bootstrap peers per node (see NetConfig.Degree); "+
		"0 connects every pair"),
	strategies: flag.String("strategies", "default,gossipsub", "TestVirtualSim: comma-separated strategies"),
	jsonPath:   flag.String("json", "", "TestVirtualSim: write the result as one JSON object to this file (give an absolute path)"),
	seed:       flag.Uint64("seed", 1, "TestVirtualSim: seed for keys, faults, origins, topology and per-pair latencies"),
	latency:    flag.Duration("latency", 10*time.Millisecond, "TestVirtualSim: one-way link latency (the least one with -latency-max)"),
	latencyMax: flag.Duration("latency-max", 0, "TestVirtualSim: draw each pair's one-way latency, fixed by the seed, uniformly up to this"),
	timeout: flag.Duration("timeout", 0, "TestVirtualSim: longest virtual wait for one broadcast (default "+
		DefaultVirtualBroadcastTimeout.String()+"; a quiet network ends it sooner)"),
	gossipSettle: flag.Duration("gossip-settle", 0, "TestVirtualSim: how long the network runs, once every node sees its gossip topic peers, "+
		"before the first broadcast (0: 1.4s, two of the default stack's heartbeats)"),
	uplinkMbps:   flag.Float64("uplink-mbps", DefaultBandwidth/1e6, "TestVirtualSim: every node's uplink in Mbit/s"),
	downlinkMbps: flag.Float64("downlink-mbps", DefaultBandwidth/1e6, "TestVirtualSim: every node's downlink in Mbit/s"),
}

// virtualConfig builds TestVirtualSim's configuration from its flags.
func virtualConfig() (NetConfig, error) {
	f := virtualFlags
	strategies, err := ParseStrategies(*f.strategies)
	if err != nil {
		return NetConfig{}, err
	}
	return NetConfig{
		Validators:       *f.validators,
		FullNodes:        *f.fullnodes,
		DownValidators:   *f.down,
		SilentValidators: *f.silent,
		Broadcasts:       *f.broadcasts,
		Strategies:       strategies,
		Seed:             *f.seed,
		PayloadSize:      *f.size,
		Latency:          *f.latency,
		Degree:           *f.degree,
		BroadcastTimeout: *f.timeout,
		GossipSettle:     *f.gossipSettle,
		Virtual: &VirtualLinks{
			LatencyMax:  *f.latencyMax,
			UplinkBPS:   int(*f.uplinkMbps * 1e6),
			DownlinkBPS: int(*f.downlinkMbps * 1e6),
		},
	}, nil
}

// runVirtual runs each strategy in its own synctest bubble, so the wall
// time of each can be read outside it, and merges the results. Keys,
// faults and origins come from the seed, so every bubble builds the same
// scenario.
func runVirtual(t *testing.T, cfg NetConfig) Result {
	t.Helper()
	var res Result
	for _, s := range cfg.Strategies {
		one := cfg
		one.Strategies = []Strategy{s}
		var r Result
		var err error
		start := time.Now()
		synctest.Test(t, func(t *testing.T) {
			r, err = RunNetwork(context.Background(), one, testWriter{t})
		})
		wall := time.Since(start)
		if err != nil {
			t.Fatalf("%s: %v", s.Name(), err)
		}
		sr := r.Strategies[0]
		sr.WallMS = ptr(ms(wall))
		t.Logf("%s: %v wall time", s.Name(), wall.Round(time.Millisecond))
		if res.Strategies == nil {
			res = r
			res.Strategies = nil
		}
		res.Strategies = append(res.Strategies, sr)
	}
	return res
}

// TestVirtualSim is the virtual-time simulator's entry point; see the
// flags above and BENCHMARKS.md. For example:
//
//	go test ./sim -run '^TestVirtualSim$' -count=1 -timeout 0 -args -validators 60 -fullnodes 40 \
//	    -broadcasts 10 -strategies cover+ack+gossipsub,gossipsub -json /tmp/virtual.json
func TestVirtualSim(t *testing.T) {
	skipVirtualNetwork(t)
	cfg, err := virtualConfig()
	if err != nil {
		t.Fatal(err)
	}
	res := runVirtual(t, cfg)
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + table.String())
	if *virtualFlags.jsonPath != "" {
		out, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*virtualFlags.jsonPath, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if res.TimeBase != TimeVirtual || len(res.Strategies) != len(cfg.Strategies) {
		t.Fatalf("time base %q with %d strategies, want %q with %d", res.TimeBase, len(res.Strategies), TimeVirtual, len(cfg.Strategies))
	}
	if cfg.DownValidators+cfg.SilentValidators > 0 {
		return // faults may cost delivery; the figures are the output
	}
	for _, s := range res.Strategies {
		if r := ratioOf(t, s); r != 1 {
			t.Errorf("%s: delivery %v without faults, want 1", s.Name, r)
		}
		// Nothing crosses a link faster than its latency.
		if s.CoverageMS == nil || s.CoverageMS.P50 < ms(cfg.Latency) {
			t.Errorf("%s: coverage %+v, want at least the link latency %v", s.Name, s.CoverageMS, cfg.Latency)
		}
	}
}

// TestVirtualSimIsReproducible runs one configuration twice with the same
// seed. Goroutine scheduling is not deterministic, and pubsub picks mesh
// peers with the global math/rand, so runs are not bit-identical; but keys,
// faults, origins and link latencies come from the seed, and virtual time
// takes the CPU out of the timings, so delivery must agree exactly and
// coverage quantiles within 5%.
//
// Twenty broadcasts, not five: under lazy gossip a full node is fed by
// the validators that happen to hold it in their mesh, and in a network
// this small one full node is a hop later in some broadcasts. With five,
// whether any broadcast had one decided the full-node p99 (81 or 120 ms
// at 40 ms links); with twenty, some always does.
func TestVirtualSimIsReproducible(t *testing.T) {
	skipVirtualNetwork(t)
	cfg := NetConfig{
		Validators:       10,
		FullNodes:        3,
		SilentValidators: 3,
		Broadcasts:       20,
		Strategies:       mustParseStrategies([]string{"cover", "gossipsub", "default"}),
		Seed:             7,
		PayloadSize:      1024,
		// Equal links: with latencies drawn per pair, pubsub's random
		// mesh would route a message over different links in each run.
		// And fast ones: pubsub walks its peer maps in random order, so
		// which of a node's copies leaves its uplink first varies between
		// runs, by up to a burst's serialisation time.
		Latency: 40 * time.Millisecond,
		Virtual: &VirtualLinks{UplinkBPS: 100_000_000, DownlinkBPS: 100_000_000},
	}
	first, second := runVirtual(t, cfg), runVirtual(t, cfg)
	for i, a := range first.Strategies {
		b := second.Strategies[i]
		for _, r := range []struct {
			name string
			a, b *float64
		}{
			{"delivery", a.DeliveryRatio, b.DeliveryRatio},
			{"validator delivery", a.ValidatorDeliveryRatio, b.ValidatorDeliveryRatio},
			{"full-node delivery", a.FullNodeDeliveryRatio, b.FullNodeDeliveryRatio},
		} {
			if (r.a == nil) != (r.b == nil) || r.a != nil && *r.a != *r.b {
				t.Errorf("%s: %s %v then %v, want equal", a.Name, r.name, deref(r.a), deref(r.b))
			}
		}
		for _, q := range []struct {
			name string
			a, b *Quantiles
		}{
			{"coverage", a.CoverageMS, b.CoverageMS},
			{"validator coverage", a.ValidatorCoverageMS, b.ValidatorCoverageMS},
			{"full-node coverage", a.FullNodeCoverageMS, b.FullNodeCoverageMS},
		} {
			if (q.a == nil) != (q.b == nil) {
				t.Errorf("%s: %s %+v then %+v", a.Name, q.name, q.a, q.b)
				continue
			}
			if q.a == nil {
				continue
			}
			t.Logf("%s: %s p50 %v / %v ms, p99 %v / %v ms", a.Name, q.name, q.a.P50, q.b.P50, q.a.P99, q.b.P99)
			if !within(q.a.P50, q.b.P50, 0.05) || !within(q.a.P99, q.b.P99, 0.05) {
				t.Errorf("%s: %s p50 %v then %v ms, p99 %v then %v ms; want within 5%%",
					a.Name, q.name, q.a.P50, q.b.P50, q.a.P99, q.b.P99)
			}
		}
	}
}

func within(a, b, frac float64) bool { return math.Abs(a-b) <= frac*math.Max(math.Abs(a), math.Abs(b)) }

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestPairLatencyIsSymmetricBoundedAndFixedBySeed(t *testing.T) {
	cfg := NetConfig{Seed: 1, Latency: 10 * time.Millisecond, Virtual: &VirtualLinks{LatencyMax: 50 * time.Millisecond}}
	a, b := newPairLatency(cfg, 40), newPairLatency(cfg, 40)
	cfg.Seed = 2
	other := newPairLatency(cfg, 40)
	lo, hi, differ := time.Hour, time.Duration(0), 0
	for i := range 40 {
		for j := range 40 {
			d := a.of(i, j)
			if d != a.of(j, i) || d != b.of(i, j) {
				t.Fatalf("pair (%d,%d): %v, reversed %v, same seed again %v; want all equal", i, j, d, a.of(j, i), b.of(i, j))
			}
			lo, hi = min(lo, d), max(hi, d)
			if d != other.of(i, j) {
				differ++
			}
		}
	}
	if lo < 10*time.Millisecond || hi > 50*time.Millisecond || hi-lo < 30*time.Millisecond {
		t.Errorf("latencies span [%v, %v], want most of [10ms, 50ms]", lo, hi)
	}
	if differ < 40*40/2 {
		t.Errorf("only %d of %d pairs differ under another seed", differ, 40*40)
	}
	static := newPairLatency(NetConfig{Latency: 7 * time.Millisecond, Virtual: &VirtualLinks{}}, 3)
	if d := static.of(0, 2); d != 7*time.Millisecond {
		t.Errorf("static latency %v, want 7ms", d)
	}
}

// skipVirtualNetwork skips a test that builds a simulated network under
// -race (sim/race_test.go) and in -short runs.
func skipVirtualNetwork(t *testing.T) {
	t.Helper()
	skipVirtualUnderRace(t)
	if testing.Short() {
		t.Skip("builds simulated QUIC networks")
	}
}
