package testnet

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/rainp2p/rainp2p/internal/home"
	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

// Defaults used by DefaultConfig.
const (
	DefaultValidators = 4
	DefaultFullNodes  = 0
	DefaultPort       = 4001
	DefaultHost       = "127.0.0.1"
	// DefaultBootstrapPeers is how many validators each full node's
	// bootstrap list names (all of them in a smaller network).
	DefaultBootstrapPeers = 4
)

// Sentinel errors callers branch on.
var (
	ErrInvalidConfig = errors.New("invalid testnet config")
	// ErrExists means a home the network would be written to already
	// exists; nothing was written.
	ErrExists = errors.New("refusing to overwrite an existing home")
)

// Config describes the network to write.
type Config struct {
	// Validators and FullNodes are how many homes of each kind to write.
	Validators, FullNodes int
	// Out is the directory the homes go into: Out/validator-0 ... and
	// Out/fullnode-0 ...
	Out string
	// NetworkID is written to the genesis.
	NetworkID string
	// Hosts, when set, give every node, validators first, the IP address
	// or DNS name other machines reach it at: nodes listen on every
	// interface and announce that address. Empty means every node runs on
	// this machine on 127.0.0.1.
	Hosts []string
	// StartingIP, when set instead of Hosts, gives the nodes consecutive
	// IPv4 addresses from it, validators first.
	StartingIP string
	// Port is the first TCP and UDP (QUIC) port; nodes sharing a host get
	// consecutive ports.
	Port int
	// BootstrapPeers bounds the validators in a full node's bootstrap list.
	BootstrapPeers int
	// AdminTokens gives every home its own random admin API bearer token
	// (admin.token, mode 0600), needed by every state-changing request.
	AdminTokens bool
	// Node is the config every home starts from (mode, log level, ...);
	// listen, announce and bootstrap addresses are filled in.
	Node home.Config
}

// DefaultConfig writes 4 validators on 127.0.0.1 into out.
func DefaultConfig(out string) Config {
	return Config{
		Validators:     DefaultValidators,
		FullNodes:      DefaultFullNodes,
		Out:            out,
		NetworkID:      p2p.DefaultNetworkID,
		Port:           DefaultPort,
		BootstrapPeers: DefaultBootstrapPeers,
		Node:           home.DefaultConfig(),
	}
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	nodes := c.Validators + c.FullNodes
	switch {
	case c.Validators < 1:
		return fail("--validators %d: a network needs at least one validator", c.Validators)
	case c.FullNodes < 0:
		return fail("--fullnodes %d must not be negative", c.FullNodes)
	case c.Out == "":
		return fail("no output directory")
	case strings.TrimSpace(c.NetworkID) == "":
		return fail("network ID is empty")
	case c.Port < 1 || c.Port+nodes-1 > 65535:
		return fail("--port %d: the ports %d..%d must lie in 1..65535", c.Port, c.Port, c.Port+nodes-1)
	case len(c.Hosts) > 0 && len(c.Hosts) != nodes:
		return fail("--hosts has %d entries for %d nodes (%d validators, then %d full nodes): give one per node", len(c.Hosts), nodes, c.Validators, c.FullNodes)
	case c.BootstrapPeers < 1:
		return fail("bootstrap peers %d must be positive", c.BootstrapPeers)
	case c.StartingIP != "" && len(c.Hosts) > 0:
		return fail("give --hosts or --starting-ip, not both")
	}
	if c.StartingIP != "" {
		if _, err := consecutiveIPs(c.StartingIP, nodes); err != nil {
			return fail("--starting-ip: %v", err)
		}
	}
	for i, h := range c.Hosts {
		if _, err := hostComponent(h); err != nil {
			return fail("--hosts entry %d: %v", i+1, err)
		}
	}
	return nil
}

// Node is one written home.
type Node struct {
	Name string
	Dir  string
	// Validator is false for a full node.
	Validator bool
	Key       *identity.Key
	// Host and Port are where other nodes reach it.
	Host string
	Port int
	// Multiaddrs are its dialable addresses, ending in /p2p/<peer id>.
	Multiaddrs []string
}

// Write creates every home. It first checks that none of them exists, and
// refuses with ErrExists, naming them, if one does; if writing fails half
// way it removes the homes it created, so it never leaves a partial network
// and never touches anything that was there before.
func Write(c Config) (_ []Node, err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.StartingIP != "" {
		c.Hosts, _ = consecutiveIPs(c.StartingIP, c.Validators+c.FullNodes)
		c.StartingIP = ""
	}
	nodes, err := plan(c)
	if err != nil {
		return nil, err
	}
	var taken []string
	for _, n := range nodes {
		if _, err := os.Lstat(n.Dir); err == nil {
			taken = append(taken, n.Dir)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("checking %s: %w", n.Dir, err)
		}
	}
	if len(taken) > 0 {
		return nil, fmt.Errorf("%w: %s (remove them or choose another --out)", ErrExists, strings.Join(taken, ", "))
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", c.Out, err)
	}
	var created []string
	defer func() {
		if err != nil {
			for _, d := range created {
				_ = os.RemoveAll(d)
			}
		}
	}()
	genesis := Genesis(c.NetworkID, nodes)
	for _, n := range nodes {
		// Mkdir, not MkdirAll: a home that appeared since the check is not ours.
		if err := os.Mkdir(n.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrExists, err)
		}
		created = append(created, n.Dir)
		if err := home.Create(n.Dir, n.Key, nodeConfig(c, n, nodes), genesis); err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		if c.AdminTokens {
			if err := writeToken(filepath.Join(n.Dir, home.AdminTokenFile)); err != nil {
				return nil, fmt.Errorf("%s: %w", n.Name, err)
			}
		}
		// Check each home the way `rainp2p node` will.
		h, err := home.Load(n.Dir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		if _, err := h.P2PConfig(nil); err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	return nodes, nil
}

// writeToken writes a new random token to a file only its owner can read.
func writeToken(path string) error {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("making an admin token: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing the admin token: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(b) + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("writing the admin token: %w", err)
	}
	return f.Close()
}

// plan names every node, makes its key and picks its host and port.
func plan(c Config) ([]Node, error) {
	nodes := make([]Node, 0, c.Validators+c.FullNodes)
	nextPort := map[string]int{}
	for i := range c.Validators + c.FullNodes {
		n := Node{Name: fmt.Sprintf("validator-%d", i), Validator: i < c.Validators, Host: DefaultHost}
		if !n.Validator {
			n.Name = fmt.Sprintf("fullnode-%d", i-c.Validators)
		}
		n.Dir = filepath.Join(c.Out, n.Name)
		if len(c.Hosts) > 0 {
			n.Host = c.Hosts[i]
		}
		n.Port = c.Port + nextPort[n.Host]
		nextPort[n.Host]++
		k, err := identity.GenerateKey()
		if err != nil {
			return nil, err
		}
		n.Key = k
		for _, a := range announceAddrs(n) {
			n.Multiaddrs = append(n.Multiaddrs, a+"/p2p/"+k.PeerID.String())
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// Genesis lists the validators among nodes at their announced addresses.
func Genesis(networkID string, nodes []Node) *validators.Genesis {
	g := &validators.Genesis{NetworkID: networkID, Validators: []validators.GenesisMember{}}
	for _, n := range nodes {
		if !n.Validator {
			continue
		}
		var as []ma.Multiaddr
		for _, s := range announceAddrs(n) {
			as = append(as, ma.StringCast(s))
		}
		m, err := validators.Member(n.Key.Private.GetPublic(), as)
		if err != nil { // keys come from identity.GenerateKey: ed25519
			panic(err)
		}
		g.Validators = append(g.Validators, m)
	}
	return g
}

// nodeConfig is n's config.json: on a given host it listens on every
// interface and announces the host; on the default host it listens on
// loopback only. Full nodes bootstrap from a few validators, spread so that
// different full nodes start at different validators.
func nodeConfig(c Config, n Node, nodes []Node) home.Config {
	cfg := c.Node
	if len(c.Hosts) > 0 {
		ip := "/ip4/0.0.0.0"
		if hc, _ := hostComponent(n.Host); strings.HasPrefix(hc, "/ip6/") {
			ip = "/ip6/::"
		}
		cfg.ListenAddrs = []string{fmt.Sprintf("%s/tcp/%d", ip, n.Port), fmt.Sprintf("%s/udp/%d/quic-v1", ip, n.Port)}
		cfg.AnnounceAddrs = announceAddrs(n)
	} else {
		cfg.ListenAddrs = announceAddrs(n)
		cfg.AnnounceAddrs = nil
	}
	cfg.Bootstrap = []string{}
	if !n.Validator {
		vals := c.Validators
		j := 0
		for _, o := range nodes {
			if !o.Validator {
				if o.Name == n.Name {
					break
				}
				j++
			}
		}
		for k := range min(vals, c.BootstrapPeers) {
			cfg.Bootstrap = append(cfg.Bootstrap, nodes[(j+k)%vals].Multiaddrs[0])
		}
	}
	return cfg
}

// announceAddrs are n's TCP and QUIC addresses, without /p2p.
func announceAddrs(n Node) []string {
	hc, err := hostComponent(n.Host)
	if err != nil { // Validate checked every host
		panic(err)
	}
	return []string{fmt.Sprintf("%s/tcp/%d", hc, n.Port), fmt.Sprintf("%s/udp/%d/quic-v1", hc, n.Port)}
}

// consecutiveIPs are n IPv4 addresses from first on.
func consecutiveIPs(first string, n int) ([]string, error) {
	a, err := netip.ParseAddr(first)
	if err != nil || !a.Is4() || a.IsUnspecified() {
		return nil, fmt.Errorf("%q is not a dialable IPv4 address", first)
	}
	out := make([]string, 0, n)
	for range n {
		if !a.IsValid() { // Next of 255.255.255.255
			return nil, fmt.Errorf("%d addresses from %s run past 255.255.255.255", n, first)
		}
		out = append(out, a.String())
		a = a.Next()
	}
	return out, nil
}

// hostComponent turns an IP address or DNS name into its multiaddr prefix.
func hostComponent(h string) (string, error) {
	h = strings.TrimSpace(h)
	if ip := net.ParseIP(h); ip != nil {
		if ip.IsUnspecified() {
			return "", fmt.Errorf("%q is not an address others can dial", h)
		}
		if ip.To4() != nil {
			return "/ip4/" + ip.String(), nil
		}
		return "/ip6/" + ip.String(), nil
	}
	if h == "" || strings.ContainsAny(h, "/ \t") || strings.HasPrefix(h, "-") || strings.HasSuffix(h, "-") {
		return "", fmt.Errorf("%q is neither an IP address nor a DNS name", h)
	}
	return "/dns/" + h, nil
}
