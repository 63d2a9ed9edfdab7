package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runLocalnetCmd executes a fresh localnet command in-process.
func runLocalnetCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newLocalnetCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestLocalnetRejectsBadInputBeforeStartingAnything(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"negative validators", []string{"--validators", "-1"}, "must not be negative"},
		{"negative full nodes", []string{"--fullnodes", "-2"}, "must not be negative"},
		{"negative broadcasts", []string{"--broadcasts", "-1"}, "must not be negative"},
		{"down plus silent above validators", []string{"--validators", "4", "--down-validators", "3", "--silent-validators", "2"}, "exceed"},
		{"no nodes", []string{"--validators", "0", "--fullnodes", "0"}, "no nodes"},
		{"unknown mode", []string{"--mode", "spiral"}, "mode"},
		{"unknown background", []string{"--background", "meshsub"}, "background"},
		{"stray argument", []string{"now"}, "unknown command"},
		{"negative timeout", []string{"--timeout", "-1s"}, "negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, _, err := runLocalnetCmd(t, append([]string{"--dir", dir, "--binary", "/nonexistent/rainp2p"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("bad input still created %d entries in %s", len(entries), dir)
			}
		})
	}
}

func TestLocalnetJSONPrintsOneReport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real node processes")
	}
	bin := filepath.Join(t.TempDir(), "rainp2p")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building rainp2p: %v\n%s", err, out)
	}
	stdout, stderr, err := runLocalnetCmd(t, "--binary", bin, "--dir", t.TempDir(), "--json",
		"--validators", "2", "--fullnodes", "1", "--broadcasts", "2", "--unicasts", "2")
	t.Log(stderr)
	if err != nil {
		t.Fatalf("localnet --json: %v", err)
	}
	var rep struct {
		OK         bool `json:"ok"`
		Broadcasts int  `json:"broadcasts"`
		Expected   int  `json:"expected"`
		Delivered  int  `json:"delivered"`
		Missing    *int `json:"missing"`
		Latency    *struct {
			P50, P99, Max *float64
		} `json:"latency_ms"`
		Nodes []struct {
			Name, Role, State string
			Received          *int `json:"received"`
			ViaRainTree       *int `json:"via_raintree"`
			ViaBackground     *int `json:"via_background"`
		} `json:"nodes"`
		DuplicatesSuppressed *uint64 `json:"duplicates_suppressed"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value:\n%s", stdout)
	}
	// 2 broadcasts reach 2 nodes each; 2 unicasts reach 1 each.
	if !rep.OK || rep.Broadcasts != 2 || rep.Expected != 6 || rep.Delivered != 6 || rep.Missing == nil || *rep.Missing != 0 ||
		rep.Latency == nil || rep.DuplicatesSuppressed == nil || len(rep.Nodes) != 3 {
		t.Fatalf("unexpected report:\n%s", stdout)
	}
	for _, n := range rep.Nodes {
		if n.Name == "" || n.Role == "" || n.State == "" || n.Received == nil || n.ViaRainTree == nil || n.ViaBackground == nil {
			t.Errorf("incomplete node entry in:\n%s", stdout)
		}
	}
	if !strings.Contains(stderr, "ready") {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}
}
