package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rainp2p/rainp2p/internal/testnet"
)

func init() { rootCmd.AddCommand(newTestnetCmd()) }

func newTestnetCmd() *cobra.Command {
	c := testnet.DefaultConfig("./testnet")
	var hosts string
	cmd := &cobra.Command{
		Use:   "testnet [--validators N] [--fullnodes M] [--out DIR] [--hosts ip1,ip2,...]",
		Short: "Write ready-to-run homes for a whole network: shared genesis, bootstrap lists",
		Long: `testnet writes DIR/validator-0 ... DIR/validator-(N-1) and DIR/fullnode-0 ...
Each is a normal home (config.json, genesis.json, key.json) that starts with
"rainp2p node --home DIR/<name>". All share one genesis naming the
validators at their addresses; full nodes bootstrap from validators.

Without --hosts every node runs on this machine on 127.0.0.1, on
consecutive ports from --port. With --hosts (one IP address or DNS name per
node, validators first) each node listens on every interface and announces
its host; nodes sharing a host get consecutive ports. Copy each home to its
machine and start it there.

It refuses to touch any home that already exists.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if hosts != "" {
				c.Hosts = strings.Split(hosts, ",")
			}
			nodes, err := testnet.Write(c)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "wrote %d homes to %s (network %s)\n", len(nodes), c.Out, c.NetworkID)
			for _, n := range nodes {
				fmt.Fprintf(out, "  %-14s %s  %s\n", n.Name, n.Key.Address, n.Multiaddrs[0])
			}
			fmt.Fprintf(out, "start each with: rainp2p node --home %s\n", filepath.Join(c.Out, "<name>"))
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&c.Validators, "validators", c.Validators, "validators (homes validator-0 ...)")
	f.IntVar(&c.FullNodes, "fullnodes", c.FullNodes, "full nodes (homes fullnode-0 ...)")
	f.StringVar(&c.Out, "out", c.Out, "directory to write the homes into")
	f.StringVar(&hosts, "hosts", "", "comma-separated IP addresses or DNS names, one per node, validators first (default: all on 127.0.0.1)")
	f.StringVar(&c.StartingIP, "starting-ip", "", "give the nodes consecutive IPv4 addresses from this one, validators first (instead of --hosts)")
	f.IntVar(&c.Port, "port", c.Port, "first TCP and UDP (QUIC) port")
	f.StringVar(&c.NetworkID, "network-id", c.NetworkID, "network / chain ID")
	f.BoolVar(&c.AdminTokens, "admin-token", false, "give each home a random admin API bearer token (admin.token, mode 0600)")
	f.IntVar(&c.BootstrapPeers, "bootstrap-peers", c.BootstrapPeers, "validators in each full node's bootstrap list")
	f.StringVar(&c.Node.Mode, "mode", c.Node.Mode, "RainTree mode: cover or reference")
	f.StringVar(&c.Node.LogLevel, "log-level", c.Node.LogLevel, "nodes' log level")
	return cmd
}
