package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/rainp2p/rainp2p/p2p/identity"
)

func init() { rootCmd.AddCommand(newKeygenCmd()) }

func newKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Create an ed25519 node key file and print its address and peer ID",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out FILE is required")
			}
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("%s already exists; refusing to overwrite a key", out)
			}
			k, err := identity.GenerateKey()
			if err != nil {
				return err
			}
			if err := k.Save(out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "address: %s\npeer_id: %s\npublic_key: %s\nkey_file: %s\n",
				k.Address, k.PeerID, identity.PublicKeyHex(k.Private.GetPublic()), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "path of the key file to create (must not exist)")
	return cmd
}
