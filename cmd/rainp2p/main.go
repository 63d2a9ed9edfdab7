// Command rainp2p runs, inspects and measures rainp2p networks: a single
// node, a whole local network of processes, RainTree plans and the simulator.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// rootCmd is the top-level command; each sub-command lives in its own file
// and registers itself in an init function.
var rootCmd = &cobra.Command{
	Use:           "rainp2p",
	Short:         "A peer-to-peer layer for validator networks (RainTree + gossip on libp2p)",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func main() {
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "rainp2p:", err)
		os.Exit(1)
	}
}
