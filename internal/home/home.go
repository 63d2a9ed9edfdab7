// Package home is the on-disk layout of a node's home directory: key file,
// node config and genesis, as written by `rainp2p init` and localnet and
// read by `rainp2p node`.
//
// It turns a home directory into a p2p.Config; it does not run anything.
package home

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rainp2p/rainp2p/internal/admin"
	"github.com/rainp2p/rainp2p/internal/jsonfile"
	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

// File names inside a home directory.
const (
	KeyFile     = "key.json"
	ConfigFile  = "config.json"
	GenesisFile = "genesis.json"
	// AdminURLFile is written by a running node once its admin API listens,
	// and removed when it stops.
	AdminURLFile = "admin.url"
	// AdminTokenFile, when present (mode 0600), holds the bearer token the
	// admin API requires on every state-changing request.
	AdminTokenFile = "admin.token"
)

// ErrNoHome is returned when a directory lacks the files of a home.
var ErrNoHome = errors.New("not a rainp2p home directory (run `rainp2p init --home DIR`)")

// Config is the node's config.json. Zero values mean the defaults.
type Config struct {
	ListenAddrs []string `json:"listen_addrs"`
	// AnnounceAddrs are the addresses other machines reach this node at;
	// when set, the node advertises only these (p2p.Config.AnnounceAddrs).
	AnnounceAddrs []string `json:"announce_addrs,omitempty"`
	AdminAddr     string   `json:"admin_addr"`
	LogLevel      string   `json:"log_level"`
	// Mode is the RainTree planning rule: "cover" (default) or "reference".
	Mode string `json:"mode"`
	// PubSub is the background router: gossipsub (default), randomsub, floodsub.
	PubSub    string   `json:"pubsub"`
	Bootstrap []string `json:"bootstrap"`
	// ACK enables RainTree acknowledgements and re-delegation (default on).
	ACK        *bool  `json:"ack,omitempty"`
	ACKTimeout string `json:"ack_timeout,omitempty"`
	// RecentSetTTL is RainTree's grace period for a replaced validator set
	// (a Go duration, default 2m): frames tagged with it are accepted that
	// long after the node moves on.
	RecentSetTTL string `json:"recent_set_ttl,omitempty"`
	// RepairSlack turns on a full node's repairs of the validators of its
	// mesh that RainTree should have reached (a Go duration, default off;
	// background.GossipParams.RepairSlack, ADR 0002 item 14).
	RepairSlack string `json:"repair_slack,omitempty"`
	// Silent is fault injection: receive but never forward.
	Silent bool `json:"silent,omitempty"`
	// Resources overrides the resource manager's limits (bytes and counts,
	// see p2p.Resources); fields left out keep their defaults.
	Resources *p2p.Resources `json:"resources,omitempty"`
}

// DefaultConfig is what `rainp2p init` writes.
func DefaultConfig() Config {
	return Config{
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		AdminAddr:   admin.DefaultAddr,
		LogLevel:    "info",
		Mode:        string(raintree.ModeCover),
		PubSub:      string(background.GossipSub),
		Bootstrap:   []string{},
	}
}

// Init creates a home directory holding a new key, the default config and,
// unless genesis is given, a genesis naming this node as sole validator.
// It refuses, naming the file, if any of key.json, config.json or
// genesis.json already exists, and never overwrites one: each is created
// exclusively.
func Init(dir, networkID string, cfg Config, genesis *validators.Genesis) (*identity.Key, error) {
	if strings.TrimSpace(networkID) == "" {
		return nil, fmt.Errorf("%w: the network ID is empty", validators.ErrInvalid)
	}
	if err := checkFree(dir); err != nil {
		return nil, err
	}
	k, err := identity.GenerateKey()
	if err != nil {
		return nil, err
	}
	if genesis == nil {
		m, err := validators.Member(k.Private.GetPublic(), nil)
		if err != nil {
			return nil, err
		}
		genesis = &validators.Genesis{NetworkID: networkID, Validators: []validators.GenesisMember{m}}
	}
	return k, Create(dir, k, cfg, genesis)
}

// Create writes a home for an existing key: key.json, config.json and
// genesis.json, each created exclusively; it refuses, naming the file, if
// any of them exists.
func Create(dir string, k *identity.Key, cfg Config, genesis *validators.Genesis) error {
	if err := checkFree(dir); err != nil {
		return err
	}
	if err := k.Save(filepath.Join(dir, KeyFile)); err != nil {
		return err
	}
	if err := writeNewJSON(filepath.Join(dir, ConfigFile), cfg); err != nil {
		return err
	}
	return writeNewJSON(filepath.Join(dir, GenesisFile), genesis)
}

// checkFree fails, naming the file, if dir holds any home file.
func checkFree(dir string) error {
	for _, name := range []string{KeyFile, ConfigFile, GenesisFile} {
		path := filepath.Join(dir, name)
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s already exists; refusing to overwrite a home (remove it or choose another --home)", path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("checking %s: %w", path, err)
		}
	}
	return nil
}

// writeNewJSON writes v as indented JSON to a file that must not exist yet.
func writeNewJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// WriteJSON writes v as indented JSON.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Node is a loaded home directory.
type Node struct {
	Dir     string
	Key     *identity.Key
	Config  Config
	Genesis *validators.Genesis
	Set     *validators.Set // the genesis set
	// Sets are the genesis set and validators/<height>.json; Height is
	// where the node stands (the height file, else the genesis height).
	Sets   *Sets
	Height uint64
}

// Load reads and checks a home directory.
func Load(dir string) (*Node, error) {
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoHome)
	}
	k, err := identity.LoadKey(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	g, set, err := validators.LoadGenesis(filepath.Join(dir, GenesisFile))
	if err != nil {
		return nil, err
	}
	sets, err := LoadSets(dir, g, set)
	if err != nil {
		return nil, err
	}
	h, err := ReadHeight(dir, g)
	if err != nil {
		return nil, err
	}
	if _, err := sets.ValidatorSet(context.Background(), h); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, HeightFile), err)
	}
	return &Node{Dir: dir, Key: k, Config: cfg, Genesis: g, Set: set, Sets: sets, Height: h}, nil
}

// LoadConfig reads the home's config.json over DefaultConfig: a field it
// does not know, or text after the object, is an error.
func LoadConfig(dir string) (Config, error) {
	cfg := DefaultConfig()
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("reading node config: %w", err)
	}
	if err := jsonfile.Decode(b, &cfg); err != nil {
		return cfg, fmt.Errorf("node config %s: %w", path, err)
	}
	return cfg, nil
}

// P2PConfig turns the home into a module configuration.
func (n *Node) P2PConfig(log *slog.Logger) (p2p.Config, error) {
	c := p2p.DefaultConfig()
	c.NetworkID = n.Genesis.NetworkID
	c.Key = n.Key
	c.Validators = n.Sets
	c.Height = n.Height
	c.Logger = log
	c.Silent = n.Config.Silent
	// An empty list is the default, loopback, not the module's every
	// interface.
	c.ListenAddrs = n.Config.ListenAddrs
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = DefaultConfig().ListenAddrs
	}
	c.AnnounceAddrs = n.Config.AnnounceAddrs
	if n.Config.Resources != nil {
		c.Resources = n.Config.Resources.WithDefaults()
	}
	c.RainTree = raintree.DefaultConfig(c.NetworkID)
	c.Background = background.DefaultConfig(c.NetworkID)
	if n.Config.Mode != "" {
		m, err := raintree.ParseMode(n.Config.Mode)
		if err != nil {
			return c, fmt.Errorf("config mode: %w", err)
		}
		c.RainTree.Mode = m
	}
	if n.Config.ACK != nil {
		c.RainTree.ACK = *n.Config.ACK
	}
	if n.Config.ACKTimeout != "" {
		d, err := time.ParseDuration(n.Config.ACKTimeout)
		if err != nil {
			return c, fmt.Errorf("config ack_timeout: %w", err)
		}
		c.RainTree.ACKTimeout = d
	}
	if n.Config.RecentSetTTL != "" {
		d, err := time.ParseDuration(n.Config.RecentSetTTL)
		if err != nil {
			return c, fmt.Errorf("config recent_set_ttl: %w", err)
		}
		c.RainTree.RecentSetTTL = d
	}
	if n.Config.RepairSlack != "" {
		d, err := time.ParseDuration(n.Config.RepairSlack)
		if err != nil || d < 0 {
			return c, fmt.Errorf("config repair_slack %q: want a non-negative duration (%v)", n.Config.RepairSlack, err)
		}
		c.Background.Gossip.RepairSlack = d
	}
	if n.Config.PubSub != "" {
		k, err := background.ParsePubSubKind(n.Config.PubSub)
		if err != nil {
			return c, fmt.Errorf("config pubsub: %w", err)
		}
		c.Background.PubSub = k
	}
	for _, s := range n.Config.Bootstrap {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return c, fmt.Errorf("config bootstrap %q: %w", s, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return c, fmt.Errorf("config bootstrap %q (want /.../p2p/<peer id>): %w", s, err)
		}
		c.Background.BootstrapPeers = append(c.Background.BootstrapPeers, *ai)
	}
	return c, c.Validate()
}

// ParseLogLevel maps debug|info|warn|error to a slog level.
func ParseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
