package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rainp2p/rainp2p/p2p/identity"
)

// runKeygen executes a fresh keygen command in-process and returns stdout.
func runKeygen(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newKeygenCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestKeygenWritesALoadableKeyAndPrintsItsIdentity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	out, err := runKeygen(t, "--out", path)
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
	if _, err := runKeygen(t, "--out", path); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second keygen to the same file: %v", err)
	}
	if _, err := runKeygen(t); err == nil {
		t.Fatal("keygen without --out succeeded")
	}
}
