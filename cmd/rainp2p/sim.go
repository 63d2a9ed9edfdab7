package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rainp2p/rainp2p/sim"
)

func init() { rootCmd.AddCommand(newSimCmd()) }

type simFlags struct {
	plan                         bool
	validators, fullnodes        int
	broadcasts                   int
	down, silent                 int
	downFraction, silentFraction float64
	strategies                   string
	seed                         uint64
	size                         int
	latency, timeout, gap        time.Duration
	loss                         float64
	degree                       int
	maxRetries                   int
	json                         bool
	report                       string
}

// networkOnlyFlags make no sense with --plan.
var networkOnlyFlags = []string{"fullnodes", "size", "latency", "loss", "degree", "timeout", "gap"}

func newSimCmd() *cobra.Command {
	var f simFlags
	cmd := &cobra.Command{
		Use:   "sim [--plan] [--validators V] [--fullnodes F] [--broadcasts B] [--strategies a,b,...]",
		Short: "Compare broadcast strategies under down and silent validators",
		Long: `Compare RainTree, gossip and both together on the same topology and faults.

Network mode (default) builds, for each strategy, a fresh in-process network of
p2p modules over libp2p mocknet hosts, sends B broadcasts from random live
nodes one after another and measures delivery, coverage time, payload copies
and bytes on the wire. Strategies: reference, cover (RainTree alone),
gossipsub, randomsub, floodsub (gossip alone), reference+gossipsub,
cover+gossipsub; "+ack" after cover enables RainTree ACKs.

Plan mode (--plan) runs the RainTree planner itself, without hosts, over up to
millions of validators: delivery, payload messages and hop depth per strategy
(reference, cover, cover+ack). Fields it cannot measure are null in --json.

Down validators are in the set but never start; silent ones receive and never
forward. Both are chosen at random from --seed, as are the origins.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runSim(ctx, cmd.Flags(), f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.plan, "plan", false, "plan RainTree broadcasts without hosts (scales to 10^6 validators)")
	fl.IntVar(&f.validators, "validators", 20, "number of validators")
	fl.IntVar(&f.fullnodes, "fullnodes", 10, "number of full nodes (network mode)")
	fl.IntVar(&f.broadcasts, "broadcasts", 20, "broadcasts per strategy, from random live nodes")
	fl.IntVar(&f.down, "down-validators", 0, "validators in the set that never start")
	fl.IntVar(&f.silent, "silent-validators", 0, "validators that receive but never forward")
	fl.Float64Var(&f.downFraction, "down-fraction", 0, "down validators as a fraction of --validators (instead of --down-validators)")
	fl.Float64Var(&f.silentFraction, "silent-fraction", 0, "silent validators as a fraction of --validators (instead of --silent-validators)")
	fl.StringVar(&f.strategies, "strategies", "", fmt.Sprintf("comma-separated strategies (default network: %s; plan: %s)",
		strings.Join(sim.NetworkStrategies, ","), strings.Join(sim.PlanStrategies, ",")))
	fl.Uint64Var(&f.seed, "seed", 1, "seed for faults and origins")
	fl.IntVar(&f.size, "size", 1024, "payload bytes per broadcast (network mode)")
	fl.DurationVar(&f.latency, "latency", 20*time.Millisecond, "one-way link latency (network mode)")
	fl.Float64Var(&f.loss, "loss", 0, "packet loss probability; unsupported, see the error it gives")
	fl.IntVar(&f.degree, "degree", 0, "initial connections per node; 0 connects every pair (network mode)")
	fl.DurationVar(&f.timeout, "timeout", sim.DefaultBroadcastTimeout, "how long to wait for one broadcast to reach every target (network mode)")
	fl.DurationVar(&f.gap, "gap", sim.DefaultGap, "pause between broadcasts (network mode)")
	fl.IntVar(&f.maxRetries, "max-retries", 0, "ACK re-delegations per target in plan mode; 0 means unbounded")
	fl.BoolVar(&f.json, "json", false, "print exactly one JSON object instead of a table")
	fl.StringVar(&f.report, "report", "", "also write a self-contained HTML report to this file")
	return cmd
}

var errBadSimFlag = errors.New("invalid sim flag")

// faultCount resolves a count flag and its fraction twin.
func faultCount(fs *pflag.FlagSet, countFlag, fracFlag string, count int, frac float64, validators int) (int, error) {
	if !fs.Changed(fracFlag) {
		return count, nil
	}
	if fs.Changed(countFlag) {
		return 0, fmt.Errorf("%w: --%s and --%s are alternatives; give one", errBadSimFlag, countFlag, fracFlag)
	}
	if frac < 0 || frac > 1 || math.IsNaN(frac) {
		return 0, fmt.Errorf("%w: --%s must be in [0, 1], got %v", errBadSimFlag, fracFlag, frac)
	}
	return int(math.Round(frac * float64(validators))), nil
}

func runSim(ctx context.Context, fs *pflag.FlagSet, f simFlags, stdout, stderr io.Writer) error {
	down, err := faultCount(fs, "down-validators", "down-fraction", f.down, f.downFraction, f.validators)
	if err != nil {
		return err
	}
	silent, err := faultCount(fs, "silent-validators", "silent-fraction", f.silent, f.silentFraction, f.validators)
	if err != nil {
		return err
	}
	var strategies []sim.Strategy
	if f.strategies != "" {
		if strategies, err = sim.ParseStrategies(f.strategies); err != nil {
			return fmt.Errorf("--strategies: %w", err)
		}
	}

	var res sim.Result
	if f.plan {
		for _, name := range networkOnlyFlags {
			if fs.Changed(name) {
				return fmt.Errorf("%w: --%s applies to network mode only, not --plan", errBadSimFlag, name)
			}
		}
		res, err = sim.RunPlan(ctx, sim.PlanConfig{
			Validators:       f.validators,
			DownValidators:   down,
			SilentValidators: silent,
			Broadcasts:       f.broadcasts,
			Strategies:       strategies,
			Seed:             f.seed,
			MaxRetries:       f.maxRetries,
		}, stderr)
	} else {
		if fs.Changed("max-retries") {
			return fmt.Errorf("%w: --max-retries applies to --plan only", errBadSimFlag)
		}
		res, err = sim.RunNetwork(ctx, sim.NetConfig{
			Validators:       f.validators,
			FullNodes:        f.fullnodes,
			DownValidators:   down,
			SilentValidators: silent,
			Broadcasts:       f.broadcasts,
			Strategies:       strategies,
			Seed:             f.seed,
			PayloadSize:      f.size,
			Latency:          f.latency,
			Loss:             f.loss,
			Degree:           f.degree,
			BroadcastTimeout: f.timeout,
			Gap:              f.gap,
		}, stderr)
	}
	if err != nil {
		return err
	}

	if f.report != "" {
		if err := writeSimReport(f.report, res); err != nil {
			return err
		}
	}
	bw := bufio.NewWriter(stdout)
	if f.json {
		if err := json.NewEncoder(bw).Encode(res); err != nil {
			return fmt.Errorf("encoding result: %w", err)
		}
	} else if err := res.WriteTable(bw); err != nil {
		return err
	}
	return bw.Flush()
}

func writeSimReport(path string, res sim.Result) error {
	fh, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating report: %w", err)
	}
	if err := sim.WriteHTML(fh, res); err != nil {
		fh.Close()
		return fmt.Errorf("writing report %s: %w", path, err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("writing report %s: %w", path, err)
	}
	return nil
}
