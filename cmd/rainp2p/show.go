package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rainp2p/rainp2p/internal/home"
	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/identity"
)

func init() { rootCmd.AddCommand(newShowCmd()) }

// shown is what `rainp2p show --json` prints.
type shown struct {
	Address    string   `json:"address"`
	PeerID     string   `json:"peer_id"`
	Multiaddrs []string `json:"multiaddrs"`
}

func newShowCmd() *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [--home DIR] [--json]",
		Short: "Print a home's address, peer ID and the multiaddrs other nodes dial it at",
		Long: `show prints the node's address, peer ID and dialable multiaddrs (with
/p2p/<peer id>), ready for another node's bootstrap list or for
"rainp2p genesis add-validator". If the node is running, the multiaddrs are
the ones it advertises now; otherwise they come from config.json (announce
addresses, else listen addresses; a port 0 is only known once it runs).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, note, err := showHome(cmd.Context(), dir)
			if err != nil {
				return err
			}
			if note != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), note)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			fmt.Fprintf(out, "address:    %s\npeer_id:    %s\nmultiaddrs:\n", s.Address, s.PeerID)
			for _, a := range s.Multiaddrs {
				fmt.Fprintf(out, "  %s\n", a)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "home", defaultHome(), "home directory")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"address","peer_id","multiaddrs"} as JSON`)
	return cmd
}

// showHome reads a home's identity and addresses; note explains addresses
// it could not know.
func showHome(ctx context.Context, dir string) (s shown, note string, err error) {
	if _, err := os.Stat(filepath.Join(dir, home.KeyFile)); err != nil {
		return s, "", fmt.Errorf("%s: %w", dir, home.ErrNoHome)
	}
	k, err := identity.LoadKey(filepath.Join(dir, home.KeyFile))
	if err != nil {
		return s, "", err
	}
	s = shown{Address: k.Address.String(), PeerID: k.PeerID.String(), Multiaddrs: []string{}}
	if live, ok := runningAddrs(ctx, dir); ok {
		for _, a := range live {
			s.Multiaddrs = append(s.Multiaddrs, a+"/p2p/"+s.PeerID)
		}
		return s, "", nil
	}
	cfg, err := home.LoadConfig(dir)
	if err != nil {
		return s, "", err
	}
	addrs, unknown, err := home.DialAddrs(cfg, k.PeerID)
	if err != nil {
		return s, "", err
	}
	for _, a := range addrs {
		s.Multiaddrs = append(s.Multiaddrs, a.String())
	}
	if len(unknown) > 0 {
		note = fmt.Sprintf("the node is not running and %s port 0: its port is chosen when it starts (set a fixed port in %s, or run show while the node runs)",
			strings.Join(unknown, ", "), filepath.Join(dir, home.ConfigFile))
	}
	return s, note, nil
}

// runningAddrs asks the node running in dir, if any, for the addresses it
// advertises.
func runningAddrs(ctx context.Context, dir string) ([]string, bool) {
	b, err := os.ReadFile(filepath.Join(dir, home.AdminURLFile))
	if err != nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSpace(string(b))+"/v1/status", nil)
	if err != nil {
		return nil, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var st p2p.Status
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st) != nil || len(st.ListenAddrs) == 0 {
		return nil, false
	}
	return st.ListenAddrs, true
}
