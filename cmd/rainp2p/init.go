package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rainp2p/rainp2p/internal/home"
	"github.com/rainp2p/rainp2p/p2p"
)

func init() { rootCmd.AddCommand(newInitCmd()) }

func newInitCmd() *cobra.Command {
	var dir, network string
	cmd := &cobra.Command{
		Use:   "init [--home DIR]",
		Short: "Create a home directory: a key, a default config and a one-validator genesis",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := home.Init(dir, network, home.DefaultConfig(), nil)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "initialised %s\naddress: %s\npeer_id: %s\nnetwork_id: %s\n", dir, k.Address, k.PeerID, network)
			fmt.Fprintf(out, "the node listens on 127.0.0.1 only by default; to accept peers from other machines set listen_addrs (e.g. /ip4/0.0.0.0/tcp/4001) and announce_addrs (e.g. /ip4/<public IP>/tcp/4001) in %s\n", filepath.Join(dir, home.ConfigFile))
			fmt.Fprintf(out, "for a whole network across machines, see: rainp2p testnet --help\n")
			fmt.Fprintf(out, "run it with: rainp2p node --home %s\n", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "home", defaultHome(), "home directory to create")
	cmd.Flags().StringVar(&network, "network-id", p2p.DefaultNetworkID, "network / chain ID")
	return cmd
}
