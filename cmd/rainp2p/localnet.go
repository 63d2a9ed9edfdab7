package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rainp2p/rainp2p/internal/localnet"
)

func init() { rootCmd.AddCommand(newLocalnetCmd()) }

// errLocalnetFailed marks a run whose deliveries did not all check out; the
// details are already printed.
var errLocalnetFailed = errors.New("localnet: some nodes did not receive every message exactly once")

func newLocalnetCmd() *cobra.Command {
	cfg := localnet.DefaultConfig()
	var asJSON bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "localnet",
		Short: "Run validators and full nodes as local processes, send traffic and check every delivery",
		Long: `localnet creates keys, a validator set and node configs in a temporary
directory, starts every node as a separate "rainp2p node" process on
127.0.0.1, broadcasts from validators and full nodes, sends unicasts across
roles, and checks through each node's admin API that every running node
received every message meant for it exactly once. It exits 0 only then.

With --netns every node runs in its own network namespace, with its own
address in 10.77.0.0/16 on a bridge in a namespace of its own, from homes
written as "rainp2p testnet --hosts" writes them; namespaces are removed on
every exit.

With --keep the network stays up after the check, with each node's admin
URL printed, until Ctrl-C; the directory is kept too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout < 0 {
				return fmt.Errorf("--timeout %v is negative (0 keeps the defaults)", timeout)
			}
			if timeout > 0 {
				cfg.ReadyTimeout, cfg.Settle = timeout, timeout
			}
			if cfg.Binary == "" {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("finding the rainp2p binary: %w", err)
				}
				cfg.Binary = exe
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			// The first Ctrl-C (or SIGTERM, SIGHUP) stops the network in
			// order; a second one kills the process.
			ctx, stop := localnet.SignalContext(cmd.Context())
			defer stop()
			return runLocalnet(ctx, cfg, asJSON, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Validators, "validators", cfg.Validators, "validators in the validator set (down and silent ones included)")
	f.IntVar(&cfg.FullNodes, "fullnodes", cfg.FullNodes, "full nodes")
	f.IntVar(&cfg.Broadcasts, "broadcasts", cfg.Broadcasts, "broadcasts to send, alternating validator and full-node origins")
	f.IntVar(&cfg.Unicasts, "unicasts", cfg.Unicasts, "unicasts to send, cycling validator/full-node role pairs")
	f.IntVar(&cfg.DownValidators, "down-validators", 0, "validators in the set that are never started")
	f.IntVar(&cfg.SilentValidators, "silent-validators", 0, "validators that receive but never forward")
	f.StringVar(&cfg.Mode, "mode", cfg.Mode, "RainTree mode: cover or reference")
	f.StringVar(&cfg.PubSub, "background", cfg.PubSub, "background router: gossipsub, randomsub or floodsub")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "nodes' log level (debug, info, warn, error); logs go to DIR/<node>/node.log")
	f.StringVar(&cfg.Dir, "dir", "", "parent of the network directory (default: the system temporary directory)")
	f.StringVar(&cfg.Binary, "binary", "", "rainp2p binary to run the nodes with (default: this one)")
	f.BoolVar(&cfg.Keep, "keep", false, "after the check, keep the network running and print admin URLs until Ctrl-C; keep the directory")
	f.BoolVar(&cfg.NetNS, "netns", false, "run each node in its own Linux network namespace with its own IP on a bridge (needs root: CAP_NET_ADMIN and CAP_SYS_ADMIN, and iproute2)")
	f.BoolVar(&asJSON, "json", false, "print one JSON report on stdout instead of the table")
	f.DurationVar(&timeout, "timeout", 0, fmt.Sprintf("bound on the ready and settle waits (default %v ready, %v settle)", cfg.ReadyTimeout, cfg.Settle))
	return cmd
}

func runLocalnet(ctx context.Context, cfg localnet.Config, asJSON bool, stdout, stderr io.Writer) (err error) {
	ln, err := localnet.Start(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := ln.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the network: %w", cerr))
		}
	}()
	rep, err := ln.Exercise(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	if cfg.Keep {
		out := stdout
		if asJSON {
			out = stderr
		}
		fmt.Fprintf(out, "\nnetwork running in %s; admin APIs:\n", ln.Dir())
		for _, nd := range ln.Nodes() {
			switch {
			case !nd.Live():
			case ln.Namespace(nd) != "": // the URL is on the namespace's loopback
				fmt.Fprintf(out, "  %-14s ip netns exec %s curl %s/v1/status\n", nd.Name, ln.Namespace(nd), nd.AdminURL())
			default:
				fmt.Fprintf(out, "  %-14s %s\n", nd.Name, nd.AdminURL())
			}
		}
		fmt.Fprintln(out, "press Ctrl-C to stop")
		<-ctx.Done()
		fmt.Fprintln(stderr, "stopping...")
	}
	if !rep.OK {
		return errLocalnetFailed
	}
	return nil
}
