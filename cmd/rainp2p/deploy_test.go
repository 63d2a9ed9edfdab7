package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/rainp2p/rainp2p/internal/home"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

func execute(t *testing.T, cmd *cobra.Command, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errb.String(), err
}

func TestTestnetWritesHomesThatShowTheirAddresses(t *testing.T) {
	out := filepath.Join(t.TempDir(), "net")
	stdout, _, err := execute(t, newTestnetCmd(), "--validators", "2", "--fullnodes", "1", "--out", out, "--hosts", "192.0.2.1,192.0.2.2,192.0.2.3", "--port", "5000")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "wrote 3 homes") || !strings.Contains(stdout, "rainp2p node --home") {
		t.Fatalf("testnet output:\n%s", stdout)
	}
	stdout, _, err = execute(t, newShowCmd(), "--home", filepath.Join(out, "fullnode-0"), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("show --json: %v\n%s", err, stdout)
	}
	h, err := home.Load(filepath.Join(out, "fullnode-0"))
	if err != nil {
		t.Fatal(err)
	}
	want := "/ip4/192.0.2.3/tcp/5000/p2p/" + h.Key.PeerID.String()
	if len(s) != 3 || s["address"] != h.Key.Address.String() || s["peer_id"] != h.Key.PeerID.String() {
		t.Fatalf("show --json printed %v", s)
	}
	if ms, _ := s["multiaddrs"].([]any); len(ms) != 2 || ms[0] != want {
		t.Fatalf("multiaddrs %v, want %s first", s["multiaddrs"], want)
	}
	if _, _, err := execute(t, newTestnetCmd(), "--out", out); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("a second testnet into the same directory: %v", err)
	}
}

func TestShowTellsWhenAPortIsOnlyKnownOnceTheNodeRuns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	if _, err := runInit(t, "--home", dir); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := execute(t, newShowCmd(), "--home", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "address:") || !strings.Contains(stderr, "port 0") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	if _, _, err := execute(t, newShowCmd(), "--home", t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a rainp2p home") {
		t.Fatalf("show on an empty directory: %v", err)
	}
}

func TestGenesisAddValidatorAssemblesAGenesis(t *testing.T) {
	dir := t.TempDir()
	net := filepath.Join(dir, "net")
	if _, _, err := execute(t, newTestnetCmd(), "--validators", "1", "--fullnodes", "2", "--out", net, "--hosts", "192.0.2.1,192.0.2.2,192.0.2.3"); err != nil {
		t.Fatal(err)
	}
	g := filepath.Join(dir, "genesis.json")
	add := func(args ...string) error {
		_, _, err := execute(t, newGenesisCmd(), append([]string{"add-validator", "--genesis", g}, args...)...)
		return err
	}
	if err := add("--home", filepath.Join(net, "fullnode-0"), "--network-id", "by-hand"); err != nil {
		t.Fatal(err)
	}
	k1, err := home.Load(filepath.Join(net, "fullnode-1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := add("--key", filepath.Join(net, "fullnode-1", home.KeyFile), "--multiaddr", "/ip4/198.51.100.9/tcp/4001"); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(g)
	bad := []struct {
		name string
		args []string
		want string
	}{
		{"a validator already listed", []string{"--home", filepath.Join(net, "fullnode-0")}, "already"},
		{"no key source", nil, "exactly one"},
		{"two key sources", []string{"--home", filepath.Join(net, "validator-0"), "--key", "x"}, "exactly one"},
		{"a bad public key", []string{"--public-key", "zz"}, "invalid key"},
		{"a bad multiaddr", []string{"--home", filepath.Join(net, "validator-0"), "--multiaddr", "nope"}, "multiaddr"},
		{"another network", []string{"--home", filepath.Join(net, "validator-0"), "--network-id", "other"}, "by-hand"},
	}
	for _, tt := range bad {
		if err := add(tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("refuses %s: got %v, want an error mentioning %q", tt.name, err, tt.want)
		}
	}
	if after, _ := os.ReadFile(g); !bytes.Equal(before, after) {
		t.Fatal("a refused add-validator changed the genesis")
	}
	gen, set, err := validators.LoadGenesis(g)
	if err != nil {
		t.Fatal(err)
	}
	if gen.NetworkID != "by-hand" || set.Len() != 2 || !set.Contains(k1.Key.Address) {
		t.Fatalf("genesis %+v", gen)
	}
	i, _ := set.IndexOf(k1.Key.Address)
	if ms := set.At(i).Multiaddrs; len(ms) != 1 || ms[0].String() != "/ip4/198.51.100.9/tcp/4001" {
		t.Fatalf("multiaddrs %v", ms)
	}
}

// While the node runs, show prints the addresses it really listens on (the
// port it was given), not the port 0 of its config.
func TestShowAsksARunningNodeForItsAddresses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	if _, err := runInit(t, "--home", dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runNode(ctx, dir, "error", "", io.Discard) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runNode: %v", err)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, home.AdminURLFile)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the node never wrote admin.url")
		}
		time.Sleep(20 * time.Millisecond)
	}
	s, note, err := showHome(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if note != "" || len(s.Multiaddrs) == 0 {
		t.Fatalf("show of a running node: %+v (note %q)", s, note)
	}
	for _, a := range s.Multiaddrs {
		if strings.Contains(a, "/tcp/0/") || strings.Contains(a, "/udp/0/") || !strings.HasSuffix(a, "/p2p/"+s.PeerID) {
			t.Fatalf("show printed %s", a)
		}
	}
}
