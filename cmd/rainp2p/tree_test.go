package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/rainp2p/rainp2p/p2p/raintree"
)

// runTreeCmd runs a fresh `tree` command in-process and returns its output.
func runTreeCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newTreeCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err := cmd.Execute()
	return out.String(), err
}

func decodeTreeJSON(t *testing.T, out string) treeJSON {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var got treeJSON
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
	if dec.More() {
		t.Fatal("output holds more than one JSON value")
	}
	return got
}

func TestTreeCommandIsRegistered(t *testing.T) {
	cmd, _, err := rootCmd.Find([]string{"tree"})
	if err != nil || cmd.Name() != "tree" {
		t.Fatalf("rootCmd.Find(tree) = %v, %v", cmd, err)
	}
}

func TestTreeJSONForNineReference(t *testing.T) {
	out, err := runTreeCmd(t, "--size", "9", "--mode", "reference", "--json")
	if err != nil {
		t.Fatal(err)
	}
	got := decodeTreeJSON(t, out)
	if got.Size != 9 || got.Origin != 1 || got.Mode != raintree.ModeReference || got.Levels != 2 ||
		got.Messages != 8 || got.LastDeliveryHop != 2 {
		t.Errorf("summary = %+v", got)
	}
	if got.Uncovered == nil || len(got.Uncovered) != 0 {
		t.Errorf("uncovered = %#v, want []", got.Uncovered)
	}
	if !strings.Contains(out, `"uncovered":[]`) {
		t.Errorf("uncovered is not encoded as []: %s", out)
	}
	want := map[int][2]int{1: {0, 4}, 4: {1, 2}, 7: {1, 2}, 2: {1, 0}, 9: {1, 0}}
	if len(got.Nodes) != 9 {
		t.Fatalf("%d nodes, want 9", len(got.Nodes))
	}
	for _, n := range got.Nodes {
		if rw, ok := want[n.ID]; ok && (rw != [2]int{n.Reads, n.Writes}) {
			t.Errorf("node %d: (reads, writes) = (%d, %d), want %v", n.ID, n.Reads, n.Writes, rw)
		}
	}
}

func TestTreeJSONForTwentySevenCover(t *testing.T) {
	out, err := runTreeCmd(t, "--size", "27", "--origin", "5", "--json")
	if err != nil {
		t.Fatal(err)
	}
	got := decodeTreeJSON(t, out)
	if got.Mode != raintree.ModeCover || got.Origin != 5 || got.Levels != 3 || got.Messages != 26 ||
		got.LastDeliveryHop != 3 || len(got.Uncovered) != 0 {
		t.Errorf("summary = %+v", got)
	}
	for _, n := range got.Nodes {
		if wantReads := 1; n.ID != 5 && n.Reads != wantReads {
			t.Errorf("node %d read %d times, want once", n.ID, n.Reads)
		}
	}
}

func TestTreeWithTwoLevelsPerHopReachesTwentySevenInTwoHops(t *testing.T) {
	out, err := runTreeCmd(t, "--size", "27", "--levels-per-hop", "2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	got := decodeTreeJSON(t, out)
	if got.LevelsPerHop != 2 || got.Messages != 26 || got.LastDeliveryHop != 2 || len(got.Uncovered) != 0 {
		t.Errorf("summary = %+v", got)
	}
	if origin := got.Nodes[0]; origin.Writes != 10 {
		t.Errorf("origin wrote %d messages, want 10 (8 parts of three, then 2)", origin.Writes)
	}
}

func TestTreeJSONListsUncoveredIDs(t *testing.T) {
	out, err := runTreeCmd(t, "--size", "8", "--mode", "reference", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeTreeJSON(t, out).Uncovered; len(got) != 2 || got[0] != 5 || got[1] != 8 {
		t.Errorf("uncovered = %v, want [5 8]", got)
	}
}

func TestTreeTextShowsTreeTableAndSummary(t *testing.T) {
	out, err := runTreeCmd(t, "--size", "27")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1 (origin) span 1..27 (27)", "├─ L3 → 10 span 10..18 (9)", "node  reads  writes", "last delivery hop  3", "uncovered          none"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestTreeTextSkipsTheTreeForLargeSets(t *testing.T) {
	out, err := runTreeCmd(t, "--size", "5000", "--mode", "reference")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "skipped above 100") || strings.Contains(out, "(origin)") {
		t.Errorf("large plan was not truncated:\n%s", out)
	}
}

func TestTreeWithNoFlagsPlansTwentySevenInCoverMode(t *testing.T) {
	out, err := runTreeCmd(t, "--json")
	if err != nil {
		t.Fatal(err)
	}
	got := decodeTreeJSON(t, out)
	if got.Size != 27 || got.Mode != "cover" || got.Messages != 26 {
		t.Fatalf("defaults: size %d mode %s messages %d", got.Size, got.Mode, got.Messages)
	}
}

func TestTreeRejectsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr error
		wantMsg string
	}{
		{"size zero", []string{"--size", "0"}, errBadTreeFlag, "--size"},
		{"negative size", []string{"--size", "-3"}, errBadTreeFlag, "--size"},
		{"size past the bound", []string{"--size", "2000000000"}, errBadTreeFlag, "--size"},
		{"size one past the bound", []string{"--size", strconv.Itoa(treeMaxSize + 1), "--json"}, errBadTreeFlag, strconv.Itoa(treeMaxSize)},
		{"origin zero", []string{"--size", "5", "--origin", "0"}, errBadTreeFlag, "--origin"},
		{"origin past the set", []string{"--size", "5", "--origin", "6"}, errBadTreeFlag, "--origin"},
		{"unknown mode", []string{"--size", "5", "--mode", "flood"}, raintree.ErrUnknownMode, "flood"},
		{"zero levels per hop", []string{"--levels-per-hop", "0"}, errBadTreeFlag, "--levels-per-hop"},
		{"too many levels per hop", []string{"--levels-per-hop", "5"}, errBadTreeFlag, "--levels-per-hop"},
		{"wide hops in reference mode", []string{"--mode", "reference", "--levels-per-hop", "2"}, errBadTreeFlag, "--mode cover"},
		{"positional argument", []string{"--size", "5", "extra"}, nil, "extra"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runTreeCmd(t, tt.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
}
