package sim

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/rainp2p/rainp2p/p2p/raintree"
)

// The modes a Result can come from.
const (
	ModePlan    = "plan"
	ModeNetwork = "network"
)

// MaxPlanValidators bounds PlanConfig.Validators: each concurrent plan
// holds about 25 bytes per validator.
const MaxPlanValidators = 10_000_000

// PlanConfig configures RunPlan.
type PlanConfig struct {
	// Validators is the size of the set. Required.
	Validators int
	// DownValidators never start: they neither receive nor forward, and
	// are neither origins nor targets. SilentValidators receive and never
	// forward; they are targets and may be origins.
	DownValidators, SilentValidators int
	// Broadcasts is how many broadcasts to plan per strategy, each from a
	// random live validator. Required.
	Broadcasts int
	// Strategies must not use gossip. Nil means PlanStrategies.
	Strategies []Strategy
	// Seed drives the fault sets and origins; strategies share them.
	Seed uint64
	// MaxRetries bounds ACK re-delegations per target; 0 means unbounded.
	MaxRetries int
	// Workers plan broadcasts in parallel; 0 means GOMAXPROCS.
	Workers int
}

func (c PlanConfig) validate() error {
	if err := checkCounts(c.Validators, c.DownValidators, c.SilentValidators, c.Broadcasts); err != nil {
		return err
	}
	if c.Validators > MaxPlanValidators {
		return fmt.Errorf("%w: plan mode handles at most %d validators, got %d", ErrBadConfig, MaxPlanValidators, c.Validators)
	}
	if c.MaxRetries < 0 {
		return fmt.Errorf("%w: --max-retries must not be negative, got %d", ErrBadConfig, c.MaxRetries)
	}
	if c.Workers < 0 {
		return fmt.Errorf("%w: workers must not be negative, got %d", ErrBadConfig, c.Workers)
	}
	for _, s := range c.Strategies {
		if s.RainTree == "" || s.Gossip != "" {
			return fmt.Errorf("%w: plan mode models RainTree alone; strategy %q is not", ErrBadConfig, s.Name())
		}
	}
	return nil
}

// planOutcome is what one planned broadcast contributes.
type planOutcome struct {
	targets, delivered, messages, duplicates, hop int
	// extra are re-delegated messages to a validator outside the
	// sender's neighbours, as (from, to) pairs.
	extra [][2]int
}

// RunPlan plans cfg.Broadcasts broadcasts per strategy with
// raintree.Broadcast, the function the router's step functions come from,
// and aggregates the plans. Progress lines go to progress when it is not
// nil. Only ctx cancellation makes it fail after validation.
func RunPlan(ctx context.Context, cfg PlanConfig, progress io.Writer) (Result, error) {
	if cfg.Strategies == nil {
		cfg.Strategies = mustParseStrategies(PlanStrategies)
	}
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	if progress == nil {
		progress = io.Discard
	}
	workers := cfg.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	f := chooseFaults(rng, cfg.Validators, cfg.DownValidators, cfg.SilentValidators)
	origins := make([]int, cfg.Broadcasts)
	for i := range origins {
		origins[i] = f.live[rng.IntN(len(f.live))]
	}

	res := Result{
		Mode:             ModePlan,
		Validators:       cfg.Validators,
		Broadcasts:       cfg.Broadcasts,
		DownValidators:   cfg.DownValidators,
		SilentValidators: cfg.SilentValidators,
		Seed:             cfg.Seed,
	}
	for i, s := range cfg.Strategies {
		start := time.Now()
		outs, err := planAll(ctx, cfg, s, f, origins, workers)
		if err != nil {
			return Result{}, err
		}
		sr := summarisePlan(s, outs, len(f.live))
		sr.RainTreePeersPerValidator = raintreePeers(raintree.Mode(s.RainTree), cfg.Validators, outs, len(f.live))
		res.Strategies = append(res.Strategies, sr)
		fmt.Fprintf(progress, "plan: strategy %d/%d %s: %d broadcasts over %d validators in %v\n",
			i+1, len(cfg.Strategies), s.Name(), cfg.Broadcasts, cfg.Validators, time.Since(start).Round(time.Millisecond))
	}
	return res, nil
}

// planAll plans every broadcast of one strategy, workers at a time; the
// outcome of broadcast j lands in slot j, so the result does not depend on
// scheduling.
func planAll(ctx context.Context, cfg PlanConfig, s Strategy, f faults, origins []int, workers int) ([]planOutcome, error) {
	opts := raintree.Options{Down: f.down, Silent: f.silent, ACK: s.ACK, MaxRetries: cfg.MaxRetries}
	mode := raintree.Mode(s.RainTree)
	offsets := map[int]bool{}
	for _, d := range raintree.Offsets(mode, cfg.Validators) {
		offsets[d] = true
	}
	outs := make([]planOutcome, len(origins))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(origins)) {
		wg.Go(func() {
			for j := range next {
				p := raintree.Broadcast(cfg.Validators, origins[j], mode, opts)
				reads := 0
				for _, r := range p.Reads {
					reads += r
				}
				targets := len(f.live) - 1
				delivered := targets - len(p.Uncovered)
				outs[j] = planOutcome{
					targets:    targets,
					delivered:  delivered,
					messages:   p.Messages,
					duplicates: reads - delivered,
					hop:        p.LastDeliveryHop,
				}
				for _, e := range p.Redelegations {
					if !offsets[((e.To-e.From)%cfg.Validators+cfg.Validators)%cfg.Validators] {
						outs[j].extra = append(outs[j].extra, [2]int{e.From, e.To})
					}
				}
			}
		})
	}
	var err error
feed:
	for j := range origins {
		select {
		case next <- j:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	return outs, err
}

func summarisePlan(s Strategy, outs []planOutcome, live int) StrategyResult {
	var targets, delivered, messages, dups, hopSum, hopMax int
	for _, o := range outs {
		targets += o.targets
		delivered += o.delivered
		messages += o.messages
		dups += o.duplicates
		hopSum += o.hop
		hopMax = max(hopMax, o.hop)
	}
	b := float64(len(outs))
	r := StrategyResult{
		Name:                        s.Name(),
		DeliveryRatio:               ratio(delivered, targets),
		ValidatorDeliveryRatio:      ratio(delivered, targets),
		PayloadMessagesPerBroadcast: round(float64(messages)/b, 3),
		DuplicatesPerNode:           round(float64(dups)/b/float64(live), 6),
		LastDeliveryHop:             &HopStats{Mean: round(float64(hopSum)/b, 3), Max: hopMax},
		Targets:                     targets,
	}
	return r
}

// raintreePeers counts the distinct validators each live validator sends
// RainTree payload to: its targets over broadcasts from every origin (the
// planner's Offsets, the same for every validator), plus the validators
// it re-delegated to beyond them in the planned broadcasts.
func raintreePeers(mode raintree.Mode, n int, outs []planOutcome, live int) *PeerStats {
	base := len(raintree.Offsets(mode, n))
	extra := map[int]map[int]bool{}
	for _, o := range outs {
		for _, e := range o.extra {
			if extra[e[0]] == nil {
				extra[e[0]] = map[int]bool{}
			}
			extra[e[0]][e[1]] = true
		}
	}
	sum, most := 0, 0
	for _, to := range extra {
		sum += len(to)
		most = max(most, len(to))
	}
	return &PeerStats{Mean: round(float64(base)+float64(sum)/float64(max(live, 1)), 3), Max: base + most}
}
