package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rainp2p/rainp2p/p2p/identity"
)

// run executes the CLI in-process with args and returns stdout.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&errb)
	rootCmd.SetArgs(args)
	err := rootCmd.Execute()
	return out.String(), err
}

func TestKeygenWritesALoadableKeyAndPrintsItsIdentity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	out, err := run(t, "keygen", "--out", path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := identity.LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "address: "+k.Address.String()) || !strings.Contains(out, "peer_id: "+k.PeerID.String()) {
		t.Fatalf("output does not name the key's identity:\n%s", out)
	}
	if _, err := run(t, "keygen", "--out", path); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second keygen to the same file: %v", err)
	}
	if _, err := run(t, "keygen"); err == nil {
		t.Fatal("keygen without --out succeeded")
	}
}
