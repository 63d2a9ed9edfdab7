package home

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/raintree"
)

func TestInitCreatesAWorkingSingleValidatorHome(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	k, err := Init(dir, "net-1", DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n.Key.Address != k.Address || !n.Set.Contains(k.Address) || n.Genesis.NetworkID != "net-1" {
		t.Fatalf("loaded %s, set of %d", n.Key.Address, n.Set.Len())
	}
	cfg, err := n.P2PConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NetworkID != "net-1" || cfg.RainTree.Mode != raintree.ModeCover || cfg.Key.PeerID != k.PeerID {
		t.Fatalf("p2p config %+v", cfg)
	}
	if _, err := Init(dir, "net-1", DefaultConfig(), nil); err == nil {
		t.Fatal("Init overwrote an existing home")
	}
}

func TestLoadRejectsBadHomes(t *testing.T) {
	tests := []struct {
		name   string
		config string
		want   string
	}{
		{"an unknown config field", `{"colour":"red"}`, "colour"},
		{"an unknown mode", `{"mode":"spiral"}`, "mode"},
		{"an unknown pubsub", `{"pubsub":"carrier-pigeon"}`, "pubsub"},
		{"a bootstrap address without a peer id", `{"bootstrap":["/ip4/127.0.0.1/tcp/1"]}`, "bootstrap"},
		{"a bad ack timeout", `{"ack_timeout":"soon"}`, "ack_timeout"},
		{"a repair slack that is no duration", `{"repair_slack":"soon"}`, "repair_slack"},
		{"a negative repair slack", `{"repair_slack":"-1ms"}`, "repair_slack"},
		{"text after the object", `{"mode":"cover"} {"mode":"bogus"}`, "text after the JSON value"},
	}
	for _, tt := range tests {
		t.Run("rejects "+tt.name, func(t *testing.T) {
			_, err := p2pConfigOf(t, tt.config)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error naming %q", err, tt.want)
			}
		})
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "rainp2p init") {
		t.Fatalf("empty dir: %v", err)
	}
}

// p2pConfigOf is the p2p config of a new home whose config.json is
// config, or the error loading it gave.
func p2pConfigOf(t *testing.T, config string) (p2p.Config, error) {
	t.Helper()
	dir := t.TempDir()
	if _, err := Init(dir, p2p.DefaultNetworkID, DefaultConfig(), nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := Load(dir)
	if err != nil {
		return p2p.Config{}, err
	}
	return n.P2PConfig(nil)
}

// An empty or null listen_addrs is the home's default, loopback only, not
// the module's every interface.
func TestAnEmptyListenListListensOnLoopback(t *testing.T) {
	for _, config := range []string{`{"listen_addrs":[]}`, `{"listen_addrs":null}`} {
		pc, err := p2pConfigOf(t, config)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range pc.ListenAddrs {
			if !strings.HasPrefix(a, "/ip4/127.0.0.1/") {
				t.Fatalf("%s: listens on %v", config, pc.ListenAddrs)
			}
		}
		if len(pc.ListenAddrs) == 0 {
			t.Fatalf("%s: no listen address", config)
		}
	}
}

// An empty network ID is refused before anything is written.
func TestInitRefusesAnEmptyNetworkID(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	if _, err := Init(dir, " ", DefaultConfig(), nil); err == nil {
		t.Fatal("Init took an empty network ID")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Init wrote %s for an empty network ID (%v)", dir, err)
	}
}

// repair_slack turns a full node's repairs on; left out, they stay off.
func TestConfigRepairSlackTurnsRepairsOn(t *testing.T) {
	for _, tt := range []struct {
		config string
		want   time.Duration
	}{{`{}`, 0}, {`{"repair_slack":"10ms"}`, 10 * time.Millisecond}} {
		pc, err := p2pConfigOf(t, tt.config)
		if err != nil {
			t.Fatal(err)
		}
		if got := pc.Background.Gossip.RepairSlack; got != tt.want {
			t.Fatalf("%s: RepairSlack %v, want %v", tt.config, got, tt.want)
		}
		if err := pc.Validate(); err != nil {
			t.Fatalf("%s: %v", tt.config, err)
		}
	}
}

func TestConfigResourcesOverrideOnlyTheLimitsTheyName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	cfg := DefaultConfig()
	if err := json.Unmarshal([]byte(`{"conns_inbound": 100, "peer_memory": 134217728}`), &cfg.Resources); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, "net-1", cfg, nil); err != nil {
		t.Fatal(err)
	}
	n, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := n.P2PConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := p2p.DefaultResources()
	want.ConnsInbound, want.PeerMemory = 100, 128<<20
	if pc.Resources != want {
		t.Fatalf("resources %+v, want %+v", pc.Resources, want)
	}
	if err := pc.Validate(); err != nil {
		t.Fatal(err)
	}
}
