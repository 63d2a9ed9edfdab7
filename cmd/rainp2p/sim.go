package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	gossipSettle                 time.Duration
	loss                         float64
	degree                       int
	maxRetries                   int
	json                         bool
	report                       string
	heapProfile                  string
}

// networkOnlyFlags make no sense with --plan.
var networkOnlyFlags = []string{"fullnodes", "size", "latency", "loss", "degree", "timeout", "gap", "gossip-settle", "heap-profile"}

func newSimCmd() *cobra.Command {
	var f simFlags
	cmd := &cobra.Command{
		Use:   "sim [--plan] [--validators V] [--fullnodes F] [--broadcasts B] [--strategies a,b,...]",
		Short: "Compare broadcast strategies under down and silent validators",
		Long: `Compare RainTree, gossip and both together on the same topology and faults.

Network mode (default) builds, for each strategy, a fresh in-process network of
p2p modules over libp2p mocknet hosts, sends B broadcasts from random live
nodes one after another and measures delivery, coverage time, payload copies
and bytes on the wire. Strategies: default (the shipped configuration,
p2p.DefaultConfig), reference, cover (RainTree alone), gossipsub (stock
parameters), randomsub, floodsub (gossip alone), reference+gossipsub,
cover+gossipsub; "+ack" after cover enables RainTree ACKs, "+lazy" lazy
gossip among validators (needs RainTree and gossipsub), "+ternary" one
RainTree level per hop for every message, "+repair" full nodes' repairs
of their validators (needs lazy; cover+ack+gossipsub+lazy+repair is the
default with repairs on).

Plan mode (--plan) runs the RainTree planner itself, without hosts, over up to
millions of validators: delivery, payload messages and hop depth per strategy
(reference, cover, cover+ack). Fields it cannot measure are null in --json. It
plans one level per hop, as RainTree sends messages of 64 KiB and more;
smaller ones go two levels per hop in sets up to 729 validators (rainp2p tree
--levels-per-hop 2).

Down validators are in the set but never start; silent ones receive and never
forward. Both are chosen at random from --seed, as are the origins.

In network mode --json also lists every broadcast ("per_broadcast"): its
origin and the origin's role, its coverage for validators and full nodes, how
many targets each router reached first, and which validator and full node were
reached last, so a slow tail can be traced to the broadcasts behind it; and
"repairs": the re-delegations, unproven blocks and fallbacks the nodes counted. Progress lines on stderr give each broadcast's time.

Network-mode times are wall clock ("time_base": "wall" in --json): two cores
drive every node, so they grow with CPU load. For times set by the links
alone, run the same networks on simulated QUIC links in virtual time:
  go test ./sim -run '^TestVirtualSim$' -count=1 -timeout 0 -args -validators 60 \
    -fullnodes 40 -strategies default,gossipsub -json /abs/path/out.json
(same flags and JSON; see BENCHMARKS.md).`,
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
	fl.IntVar(&f.degree, "degree", sim.DefaultDegree, "bootstrap peers per node, which it dials itself; 0 connects every pair instead (network mode)")
	fl.DurationVar(&f.timeout, "timeout", 0, fmt.Sprintf("longest wait for one broadcast to reach every target; it ends sooner once no payload moves for a quiet period; 0: %v, or 20ms per node when longer (network mode)", sim.DefaultBroadcastTimeout))
	fl.DurationVar(&f.gap, "gap", sim.DefaultGap, "pause between broadcasts (network mode)")
	fl.DurationVar(&f.gossipSettle, "gossip-settle", 0, "how long the network runs, once every node sees its gossip topic peers, before the first broadcast; 0: 1.4s, two of the default stack's heartbeats; longer measures a network past its start-up (network mode)")
	fl.IntVar(&f.maxRetries, "max-retries", 0, "ACK re-delegations per target in plan mode; 0 means unbounded")
	fl.BoolVar(&f.json, "json", false, "print exactly one JSON object instead of a table")
	fl.StringVar(&f.report, "report", "", "also write a self-contained HTML report to this file")
	fl.StringVar(&f.heapProfile, "heap-profile", "", "write a heap profile per strategy to PREFIX-<strategy>.pprof at the end of its run (network mode)")
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

	if f.plan {
		for _, name := range networkOnlyFlags {
			if fs.Changed(name) {
				return fmt.Errorf("%w: --%s applies to network mode only, not --plan", errBadSimFlag, name)
			}
		}
	} else if fs.Changed("max-retries") {
		return fmt.Errorf("%w: --max-retries applies to --plan only", errBadSimFlag)
	}

	// Open the report first: a path we cannot write must not cost a run.
	var report *simReport
	if f.report != "" {
		if report, err = openSimReport(f.report); err != nil {
			return err
		}
	}
	runErr := func() (err error) {
		var res sim.Result
		if f.plan {
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
				GossipSettle:     f.gossipSettle,
				HeapProfile:      f.heapProfile,
			}, stderr)
		}
		if err != nil {
			return err
		}
		// The result goes to stdout before the report is written, so a
		// failing report never loses a finished run.
		bw := bufio.NewWriter(stdout)
		if f.json {
			if err := json.NewEncoder(bw).Encode(res); err != nil {
				return fmt.Errorf("encoding result: %w", err)
			}
		} else if err := res.WriteTable(bw); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if report != nil {
			err := report.write(res)
			report = nil
			return err
		}
		return nil
	}()
	if report != nil { // the run failed before the report was written
		report.abandon()
	}
	return runErr
}

// writeReportHTML renders the report; tests replace it.
var writeReportHTML = sim.WriteHTML

// simReport is the --report file, opened before the run.
type simReport struct {
	path    string
	fh      *os.File
	created bool // the file did not exist before
}

// openSimReport opens path for writing without truncating it, so an
// existing report survives a run that fails.
func openSimReport(path string) (*simReport, error) {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	created := err == nil
	if errors.Is(err, fs.ErrExist) {
		fh, err = os.OpenFile(path, os.O_WRONLY, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("--report: cannot write the report, nothing was run: %w", err)
	}
	return &simReport{path: path, fh: fh, created: created}, nil
}

// write replaces the file's content with the report for res. On failure
// the partly written file is removed.
func (r *simReport) write(res sim.Result) error {
	var err error
	if fi, serr := r.fh.Stat(); serr == nil && fi.Mode().IsRegular() {
		err = r.fh.Truncate(0)
	}
	if err == nil {
		err = writeReportHTML(r.fh, res)
	}
	if cerr := r.fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		r.remove()
		return fmt.Errorf("writing report %s (results are on stdout above): %w", r.path, err)
	}
	return nil
}

// abandon closes the file untouched, removing it if the run created it.
func (r *simReport) abandon() {
	_ = r.fh.Close()
	if r.created {
		r.remove()
	}
}

// remove deletes the report file, only ever a regular file.
func (r *simReport) remove() {
	if fi, err := os.Lstat(r.path); err == nil && fi.Mode().IsRegular() {
		_ = os.Remove(r.path)
	}
}
