package testnet

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rainp2p/rainp2p/internal/admin"
	"github.com/rainp2p/rainp2p/internal/home"
)

func TestWriteMakesRunnableHomesWithOneGenesis(t *testing.T) {
	out := filepath.Join(t.TempDir(), "net")
	c := DefaultConfig(out)
	c.Validators, c.FullNodes = 3, 2
	c.Hosts = []string{"10.0.0.1", "10.0.0.2", "10.0.0.2", "fd00::5", "node5.example.org"}
	nodes, err := Write(c)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var genesis []byte
	for _, n := range nodes {
		names = append(names, n.Name)
		h, err := home.Load(n.Dir)
		if err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		if h.Key.Address != n.Key.Address || h.Set.Contains(n.Key.Address) != n.Validator {
			t.Fatalf("%s: key %s, validator in genesis %v", n.Name, h.Key.Address, h.Set.Contains(n.Key.Address))
		}
		g, err := os.ReadFile(filepath.Join(n.Dir, home.GenesisFile))
		if err != nil {
			t.Fatal(err)
		}
		if genesis == nil {
			genesis = g
		} else if string(g) != string(genesis) {
			t.Fatalf("%s has a different genesis", n.Name)
		}
		if h.Set.Len() != 3 {
			t.Fatalf("genesis has %d validators, want 3", h.Set.Len())
		}
		if !n.Validator && len(h.Config.Bootstrap) != 3 {
			t.Fatalf("%s bootstraps from %v, want the 3 validators", n.Name, h.Config.Bootstrap)
		}
	}
	if want := []string{"validator-0", "validator-1", "validator-2", "fullnode-0", "fullnode-1"}; !slices.Equal(names, want) {
		t.Fatalf("homes %v, want %v", names, want)
	}
	tests := []struct {
		node             int
		listen, announce string
	}{
		{0, "/ip4/0.0.0.0/tcp/4001", "/ip4/10.0.0.1/tcp/4001"},
		{2, "/ip4/0.0.0.0/tcp/4002", "/ip4/10.0.0.2/tcp/4002"}, // the second node on 10.0.0.2
		{3, "/ip6/::/tcp/4001", "/ip6/fd00::5/tcp/4001"},
		{4, "/ip4/0.0.0.0/tcp/4001", "/dns/node5.example.org/tcp/4001"},
	}
	for _, tt := range tests {
		h, err := home.Load(nodes[tt.node].Dir)
		if err != nil {
			t.Fatal(err)
		}
		if h.Config.ListenAddrs[0] != tt.listen || h.Config.AnnounceAddrs[0] != tt.announce {
			t.Errorf("%s listens on %v and announces %v, want %s and %s", nodes[tt.node].Name, h.Config.ListenAddrs, h.Config.AnnounceAddrs, tt.listen, tt.announce)
		}
	}
}

func TestAdminTokensArePrivateAndDistinct(t *testing.T) {
	c := DefaultConfig(t.TempDir())
	c.Validators = 2
	c.AdminTokens = true
	nodes, err := Write(c)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		tok, err := admin.ReadToken(filepath.Join(n.Dir, home.AdminTokenFile))
		if err != nil || len(tok) != 64 || seen[tok] {
			t.Fatalf("%s: token %q, %v (seen before: %v)", n.Name, tok, err, seen[tok])
		}
		seen[tok] = true
	}
}

func TestWriteWithoutHostsUsesLoopback(t *testing.T) {
	nodes, err := Write(DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != DefaultValidators {
		t.Fatalf("%d homes, want %d", len(nodes), DefaultValidators)
	}
	for i, n := range nodes {
		h, err := home.Load(n.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(h.Config.AnnounceAddrs) != 0 || !strings.HasPrefix(h.Config.ListenAddrs[0], "/ip4/127.0.0.1/tcp/") || n.Port != DefaultPort+i {
			t.Fatalf("%s: listen %v announce %v port %d", n.Name, h.Config.ListenAddrs, h.Config.AnnounceAddrs, n.Port)
		}
	}
}

func TestWriteNeverOverwritesAHome(t *testing.T) {
	out := t.TempDir()
	precious := filepath.Join(out, "validator-1", home.KeyFile)
	if err := os.MkdirAll(filepath.Dir(precious), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(precious, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Write(DefaultConfig(out))
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), filepath.Dir(precious)) {
		t.Fatalf("got %v, want ErrExists naming %s", err, filepath.Dir(precious))
	}
	if b, _ := os.ReadFile(precious); string(b) != "precious\n" {
		t.Fatalf("the existing key was changed: %q", b)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 {
		t.Fatalf("a refused write left %d entries in %s", len(entries), out)
	}
}

func TestBadConfigsAreRefusedClearly(t *testing.T) {
	tests := []struct {
		name  string
		tweak func(*Config)
		want  string
	}{
		{"no validators", func(c *Config) { c.Validators = 0 }, "at least one validator"},
		{"negative full nodes", func(c *Config) { c.FullNodes = -1 }, "--fullnodes"},
		{"too few hosts", func(c *Config) { c.Hosts = []string{"10.0.0.1"} }, "one per node"},
		{"an unspecified host", func(c *Config) { c.Hosts = []string{"0.0.0.0", "a", "b", "c"} }, "dial"},
		{"a host with a slash", func(c *Config) { c.Hosts = []string{"a/b", "a", "b", "c"} }, "neither"},
		{"ports past 65535", func(c *Config) { c.Port = 65534 }, "65535"},
		{"an empty network ID", func(c *Config) { c.NetworkID = " " }, "network ID"},
	}
	for _, tt := range tests {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "net")
			c := DefaultConfig(out)
			tt.tweak(&c)
			_, err := Write(c)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrInvalidConfig mentioning %q", err, tt.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatal("a refused config still created the output directory")
			}
		})
	}
}

func TestStartingIPGivesConsecutiveAddresses(t *testing.T) {
	c := DefaultConfig(filepath.Join(t.TempDir(), "net"))
	c.Validators, c.FullNodes = 2, 1
	c.StartingIP = "192.0.2.254"
	nodes, err := Write(c)
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, n := range nodes {
		hosts = append(hosts, n.Host)
	}
	if want := []string{"192.0.2.254", "192.0.2.255", "192.0.3.0"}; !slices.Equal(hosts, want) {
		t.Fatalf("hosts %v, want %v", hosts, want)
	}
	for _, bad := range []string{"255.255.255.254", "fd00::1", "0.0.0.0", "nope"} {
		c := DefaultConfig(filepath.Join(t.TempDir(), "net"))
		c.StartingIP = bad
		if _, err := Write(c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("--starting-ip %s: %v, want ErrInvalidConfig", bad, err)
		}
	}
}
