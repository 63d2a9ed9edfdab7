package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rainp2p/rainp2p/sim"
)

// runSimCmd runs a fresh `sim` command in-process; stdout and stderr are
// returned separately.
func runSimCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newSimCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

// decodeOne decodes stdout, which must hold exactly one JSON object.
func decodeOne(t *testing.T, out string) map[string]json.RawMessage {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var got map[string]json.RawMessage
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
	if dec.More() {
		t.Fatal("output holds more than one JSON value")
	}
	return got
}

func strategiesOf(t *testing.T, top map[string]json.RawMessage) map[string]map[string]json.RawMessage {
	t.Helper()
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(top["strategies"], &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]json.RawMessage{}
	for _, s := range list {
		var name string
		_ = json.Unmarshal(s["name"], &name)
		out[name] = s
	}
	return out
}

var strategyKeys = []string{
	"name", "delivery_ratio", "validator_delivery_ratio", "fullnode_delivery_ratio",
	"payload_messages_per_broadcast", "payload_bytes_per_broadcast", "duplicates_per_node",
	"coverage_ms", "validator_coverage_ms", "fullnode_coverage_ms", "wall_ms",
	"raintree_peers_per_validator", "connections_per_node", "peak_rss_bytes", "payload_copies_per_node", "per_broadcast", "repairs",
}

func TestSimCommandIsRegistered(t *testing.T) {
	cmd, _, err := rootCmd.Find([]string{"sim"})
	if err != nil || cmd.Name() != "sim" {
		t.Fatalf("rootCmd.Find(sim) = %v, %v", cmd, err)
	}
}

func TestSimPlanJSON(t *testing.T) {
	out, stderr, err := runSimCmd(t, "--plan", "--validators", "24", "--broadcasts", "10", "--down-fraction", "0.25", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "strategy 3/3") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
	top := decodeOne(t, out)
	if string(top["time_base"]) != "null" {
		t.Errorf("time_base = %s, want null in plan mode, which measures no time", top["time_base"])
	}
	if string(top["validators"]) != "24" || string(top["fullnodes"]) != "0" || string(top["down_validators"]) != "6" {
		t.Errorf("header = validators %s, fullnodes %s, down %s", top["validators"], top["fullnodes"], top["down_validators"])
	}
	ss := strategiesOf(t, top)
	for _, name := range sim.PlanStrategies {
		s, ok := ss[name]
		if !ok {
			t.Fatalf("no %s in %v", name, ss)
		}
		for _, k := range strategyKeys {
			if _, ok := s[k]; !ok {
				t.Errorf("%s lacks %s", name, k)
			}
		}
		if string(s["coverage_ms"]) != "null" || string(s["fullnode_delivery_ratio"]) != "null" || string(s["per_broadcast"]) != "null" || string(s["repairs"]) != "null" {
			t.Errorf("%s: coverage_ms %s, fullnode ratio %s, per_broadcast %s, repairs %s; want null in plan mode",
				name, s["coverage_ms"], s["fullnode_delivery_ratio"], s["per_broadcast"], s["repairs"])
		}
	}
	if string(ss["cover+ack"]["delivery_ratio"]) != "1" {
		t.Errorf("cover+ack delivery_ratio = %s, want 1", ss["cover+ack"]["delivery_ratio"])
	}
}

func TestSimNetworkJSONShapeAndReport(t *testing.T) {
	if testing.Short() {
		t.Skip("builds libp2p networks")
	}
	report := filepath.Join(t.TempDir(), "sim.html")
	out, stderr, err := runSimCmd(t, "--validators", "6", "--fullnodes", "3", "--broadcasts", "3", "--latency", "2ms",
		"--size", "256", "--strategies", "cover,cover+gossipsub", "--json", "--report", report)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "strategy 2/2 cover+gossipsub: broadcast 3/3") {
		t.Errorf("progress lines missing: %q", stderr)
	}
	top := decodeOne(t, out)
	if string(top["time_base"]) != `"wall"` {
		t.Errorf("time_base = %s, want \"wall\" for mocknet", top["time_base"])
	}
	if string(top["validators"]) != "6" || string(top["fullnodes"]) != "3" {
		t.Errorf("header = %s/%s", top["validators"], top["fullnodes"])
	}
	ss := strategiesOf(t, top)
	for name, s := range ss {
		for _, k := range strategyKeys {
			if _, ok := s[k]; !ok {
				t.Errorf("%s lacks %s", name, k)
			}
		}
		var q map[string]float64
		if err := json.Unmarshal(s["coverage_ms"], &q); err != nil || len(q) != 3 {
			t.Errorf("%s coverage_ms = %s, want {p50,p99,max}", name, s["coverage_ms"])
		}
		var each []map[string]json.RawMessage
		if err := json.Unmarshal(s["per_broadcast"], &each); err != nil || len(each) != 3 || each[0]["first_via"] == nil {
			t.Errorf("%s per_broadcast = %s, want three broadcasts", name, s["per_broadcast"])
		}
	}
	if got := string(ss["cover"]["fullnode_delivery_ratio"]); got != "null" {
		t.Errorf("cover fullnode_delivery_ratio = %s, want null for RainTree alone", got)
	}
	if got := string(ss["cover+gossipsub"]["fullnode_delivery_ratio"]); got != "1" {
		t.Errorf("cover+gossipsub fullnode_delivery_ratio = %s, want 1", got)
	}
	page, err := os.ReadFile(report)
	if err != nil || !bytes.Contains(page, []byte("<svg")) {
		t.Errorf("report: %v, %d bytes", err, len(page))
	}
}

func TestSimRejectsBadFlags(t *testing.T) {
	tests := [][]string{
		{"--validators", "-3"},
		{"--validators", "10", "--down-validators", "6", "--silent-validators", "5"},
		{"--strategies", "cover,plumtree"},
		{"--plan", "--strategies", "cover+gossipsub"},
		{"--plan", "--fullnodes", "3"},
		{"--down-validators", "1", "--down-fraction", "0.1"},
		{"--silent-fraction", "1.5"},
		{"--loss", "0.05"},
		{"--max-retries", "2"},
		{"--size", "0"},
		{"--gossip-settle", "-1s"},
		{"--plan", "--gossip-settle", "5s"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, _, err := runSimCmd(t, args...)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, sim.ErrBadConfig) && !errors.Is(err, errBadSimFlag) {
				t.Errorf("error %v wraps neither sim.ErrBadConfig nor errBadSimFlag", err)
			}
		})
	}
}

func TestSimUnwritableReportFailsBeforeRunning(t *testing.T) {
	report := filepath.Join(t.TempDir(), "no-such-dir", "sim.html")
	out, stderr, err := runSimCmd(t, "--plan", "--validators", "24", "--broadcasts", "2", "--report", report)
	if err == nil || !strings.Contains(err.Error(), "--report") {
		t.Fatalf("error = %v, want one about --report", err)
	}
	if out != "" || stderr != "" {
		t.Errorf("something ran: stdout %q, stderr %q", out, stderr)
	}
}

func TestSimFailedRunLeavesNoNewReportAndKeepsAnOldOne(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.html")
	if _, _, err := runSimCmd(t, "--plan", "--validators", "0", "--report", fresh); err == nil {
		t.Fatal("no error for --validators 0")
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("report of a failed run left behind: %v", err)
	}
	old := filepath.Join(dir, "old.html")
	if err := os.WriteFile(old, []byte("previous report"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runSimCmd(t, "--plan", "--validators", "0", "--report", old); err == nil {
		t.Fatal("no error for --validators 0")
	}
	if b, err := os.ReadFile(old); err != nil || string(b) != "previous report" {
		t.Errorf("existing report after a failed run: %q, %v; want it untouched", b, err)
	}
	// A successful run replaces it.
	if _, _, err := runSimCmd(t, "--plan", "--validators", "8", "--broadcasts", "2", "--report", old); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(old); err != nil || !bytes.HasPrefix(b, []byte("<!DOCTYPE html>")) {
		t.Errorf("report after a run: %.40q, %v", b, err)
	}
}

func TestSimReportWriteErrorKeepsResultsAndRemovesPartialFile(t *testing.T) {
	failure := errors.New("disk full")
	orig := writeReportHTML
	writeReportHTML = func(w io.Writer, _ sim.Result) error {
		_, _ = io.WriteString(w, "<!DOCTYPE html><html>partial")
		return failure
	}
	t.Cleanup(func() { writeReportHTML = orig })

	report := filepath.Join(t.TempDir(), "sim.html")
	out, _, err := runSimCmd(t, "--plan", "--validators", "8", "--broadcasts", "2", "--json", "--report", report)
	if !errors.Is(err, failure) || !strings.Contains(err.Error(), report) {
		t.Errorf("error = %v, want the write failure naming %s", err, report)
	}
	top := decodeOne(t, out) // the finished run is on stdout all the same
	if string(top["validators"]) != "8" {
		t.Errorf("stdout = %s", out)
	}
	if _, err := os.Stat(report); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partly written report left behind: %v", err)
	}
}

func TestSimPlanSingleValidatorHasNullDeliveryRatio(t *testing.T) {
	out, _, err := runSimCmd(t, "--plan", "--validators", "1", "--broadcasts", "2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range strategiesOf(t, decodeOne(t, out)) {
		if string(s["delivery_ratio"]) != "null" || string(s["validator_delivery_ratio"]) != "null" {
			t.Errorf("%s: delivery_ratio %s, validator_delivery_ratio %s; want null, null",
				name, s["delivery_ratio"], s["validator_delivery_ratio"])
		}
	}
	table, _, err := runSimCmd(t, "--plan", "--validators", "1", "--broadcasts", "2")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(table, "%!") || strings.Contains(table, "100.00%") {
		t.Errorf("table shows a ratio for no targets:\n%s", table)
	}
}

func TestSimNegativeMaxRetriesNamesTheFlag(t *testing.T) {
	_, _, err := runSimCmd(t, "--plan", "--max-retries", "-1")
	if err == nil || !strings.Contains(err.Error(), "--max-retries") || strings.Contains(err.Error(), "MaxRetries") {
		t.Errorf("error = %v, want one naming --max-retries", err)
	}
}
