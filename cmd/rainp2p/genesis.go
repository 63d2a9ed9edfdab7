package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/spf13/cobra"

	"github.com/rainp2p/rainp2p/internal/home"
	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

func init() { rootCmd.AddCommand(newGenesisCmd()) }

func newGenesisCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "genesis",
		Short: "Assemble a genesis (validator set) file by hand",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newAddValidatorCmd())
	return cmd
}

// addValidator is what `genesis add-validator` is asked to do.
type addValidator struct {
	genesis, home, keyFile, publicKey, networkID string
	multiaddrs                                   []string
}

func newAddValidatorCmd() *cobra.Command {
	var a addValidator
	cmd := &cobra.Command{
		Use:   "add-validator --genesis FILE (--home DIR | --key FILE | --public-key HEX) [--multiaddr MA ...]",
		Short: "Add a validator to a genesis file, creating the file if needed",
		Long: `add-validator appends one validator to a genesis file: from a home
(its key and, unless --multiaddr is given, the addresses "rainp2p show"
prints), from a key file, or from a hex ed25519 public key. A missing
genesis file is created for --network-id. The file is checked and replaced
atomically; a validator already listed, a bad key or a bad multiaddr is
refused and the file is left as it was. Copy the finished genesis.json into
every home.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, total, err := a.run(cmd.Flags().Changed("network-id"))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added validator %s to %s (%d validators)\n", m.Address, a.genesis, total)
			if len(m.Multiaddrs) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: no multiaddrs for %s; other validators can only find it through gossip discovery\n", m.Address)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&a.genesis, "genesis", "genesis.json", "genesis file to add to (created if missing)")
	f.StringVar(&a.home, "home", "", "take the validator's key and addresses from this home")
	f.StringVar(&a.keyFile, "key", "", "take the validator's key from this key file")
	f.StringVar(&a.publicKey, "public-key", "", "the validator's ed25519 public key, hex")
	f.StringArrayVar(&a.multiaddrs, "multiaddr", nil, "an address the validator is reached at, e.g. /ip4/203.0.113.7/tcp/4001 (repeatable)")
	f.StringVar(&a.networkID, "network-id", p2p.DefaultNetworkID, "network ID of a new genesis file (must match an existing one)")
	return cmd
}

func (a addValidator) run(networkIDGiven bool) (validators.GenesisMember, int, error) {
	var none validators.GenesisMember
	pub, err := a.key()
	if err != nil {
		return none, 0, err
	}
	g := &validators.Genesis{NetworkID: a.networkID, Validators: []validators.GenesisMember{}}
	switch _, err := os.Stat(a.genesis); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return none, 0, fmt.Errorf("reading genesis: %w", err)
	default:
		if g, _, err = validators.LoadGenesis(a.genesis); err != nil {
			return none, 0, err
		}
		if networkIDGiven && g.NetworkID != a.networkID {
			return none, 0, fmt.Errorf("%s is for network %q, not --network-id %q", a.genesis, g.NetworkID, a.networkID)
		}
	}
	m, err := validators.Member(pub, nil)
	if err != nil {
		return none, 0, err
	}
	addrs := a.multiaddrs
	if len(addrs) == 0 && a.home != "" {
		if addrs, err = homeAddrs(a.home); err != nil {
			return none, 0, err
		}
	}
	m.Multiaddrs = append(m.Multiaddrs, addrs...)
	for _, v := range g.Validators {
		if strings.EqualFold(v.PublicKey, m.PublicKey) {
			return none, 0, fmt.Errorf("validator %s is already in %s", m.Address, a.genesis)
		}
	}
	g.Validators = append(g.Validators, m)
	if _, err := g.Set(); err != nil { // the whole file must still load
		return none, 0, err
	}
	if err := home.ReplaceJSON(a.genesis, g); err != nil {
		return none, 0, err
	}
	return m, len(g.Validators), nil
}

// key finds the validator's public key in exactly one of the sources.
func (a addValidator) key() (crypto.PubKey, error) {
	given := 0
	for _, s := range []string{a.home, a.keyFile, a.publicKey} {
		if s != "" {
			given++
		}
	}
	if given != 1 {
		return nil, errors.New("give exactly one of --home, --key and --public-key")
	}
	switch {
	case a.publicKey != "":
		return identity.ParsePublicKey(a.publicKey)
	case a.keyFile != "":
		k, err := identity.LoadKey(a.keyFile)
		if err != nil {
			return nil, err
		}
		return k.Private.GetPublic(), nil
	default:
		k, err := identity.LoadKey(filepath.Join(a.home, home.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.home, err)
		}
		return k.Private.GetPublic(), nil
	}
}

// homeAddrs are the addresses a home's config says it is reached at,
// without the /p2p part (a genesis names the key separately).
func homeAddrs(dir string) ([]string, error) {
	s, _, err := showHome(context.Background(), dir)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(s.Multiaddrs))
	for _, a := range s.Multiaddrs {
		out = append(out, strings.TrimSuffix(a, "/p2p/"+s.PeerID))
	}
	return out, nil
}
