package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rainp2p/rainp2p/internal/home"
)

func runInit(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newInitCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestInitSaysWhereTheNodeListensAndOnWhichNetwork(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	out, err := runInit(t, "--home", dir, "--network-id", "testnet-7")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"network_id: testnet-7", "127.0.0.1 only", "listen_addrs", filepath.Join(dir, home.ConfigFile), "rainp2p node --home " + dir} {
		if !strings.Contains(out, want) {
			t.Errorf("init output lacks %q:\n%s", want, out)
		}
	}
	if _, err := runInit(t, "--home", dir); err == nil || !strings.Contains(err.Error(), home.KeyFile) {
		t.Fatalf("second init: %v, want a refusal naming %s", err, home.KeyFile)
	}
}

func TestANodeRefusesAHomeAnotherNodeHolds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	if _, err := runInit(t, "--home", dir); err != nil {
		t.Fatal(err)
	}
	unlock, err := home.Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	err = runNode(context.Background(), dir, "", "", io.Discard)
	if err == nil || !strings.Contains(err.Error(), "in use by another node") {
		t.Fatalf("runNode on a held home: %v", err)
	}
}

func TestAdminURLIsRemovedOnlyIfItIsStillOurs(t *testing.T) {
	const ours = "http://127.0.0.1:1\n"
	tests := []struct {
		name     string
		contents string // "" means no file
		wantGone bool
	}{
		{"our URL is removed", ours, true},
		{"another node's URL is kept", "http://127.0.0.1:2\n", false},
		{"a missing file stays missing", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), home.AdminURLFile)
			if tt.contents != "" {
				if err := os.WriteFile(path, []byte(tt.contents), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			removeIfHolds(path, ours)
			_, err := os.Stat(path)
			if gone := os.IsNotExist(err); gone != tt.wantGone {
				t.Fatalf("file gone = %v, want %v", gone, tt.wantGone)
			}
		})
	}
}

// An empty admin_addr in config.json is the default loopback address,
// as every zero value there is, not an address without a port.
func TestAnEmptyAdminAddrIsTheDefault(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	if _, err := runInit(t, "--home", dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, home.ConfigFile), []byte(`{"admin_addr":""}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runNode(ctx, dir, "", "", io.Discard) }()
	deadline := time.After(30 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, home.AdminURLFile)); err == nil && strings.HasPrefix(string(b), "http://127.0.0.1:") {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the node stopped before its admin API listened: %v", err)
		case <-deadline:
			t.Fatal("no admin URL after 30 s")
		case <-time.After(10 * time.Millisecond): // polling for the file
		}
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("runNode: %v", err)
	}
}
