package localnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/rainp2p/rainp2p/internal/home"
	"github.com/rainp2p/rainp2p/internal/netns"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

// Network is a running local network. Close stops it.
type Network struct {
	cfg      Config
	dir      string
	nodes    []*Node
	progress io.Writer
	api      *client
	// fabric holds the nodes' namespaces in NetNS mode (nil otherwise).
	fabric *netns.Fabric
	// preserve keeps the directory after a failure, for its logs.
	preserve atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// Start writes the home directories, starts every live node and waits
// until they are connected. On error it stops whatever it started.
func Start(ctx context.Context, cfg Config, progress io.Writer) (_ *Network, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = io.Discard
	}
	if _, err := exec.LookPath(cfg.Binary); err != nil {
		return nil, fmt.Errorf("rainp2p binary: %w", err)
	}
	if cfg.NetNS {
		if err := netns.Available(); err != nil {
			return nil, fmt.Errorf("--netns: %w", err)
		}
	}
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", cfg.Dir, err)
		}
	}
	dir, err := os.MkdirTemp(cfg.Dir, "rainp2p-localnet-")
	if err != nil {
		return nil, fmt.Errorf("creating the network directory: %w", err)
	}
	n := &Network{cfg: cfg, dir: dir, progress: progress, api: newClient()}
	defer func() {
		if err != nil {
			if ctx.Err() == nil {
				n.preserve.Store(true)
			}
			if cerr := n.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	if cfg.NetNS {
		err = n.prepareNetNS(ctx)
	} else {
		err = n.createHomes()
	}
	if err != nil {
		return nil, err
	}
	live := n.Live()
	n.logf("starting %s (%s, %d of them down, %d silent; %s) in %s",
		plural(len(live), "node"), plural(cfg.Validators, "validator"), cfg.DownValidators, cfg.SilentValidators,
		plural(cfg.FullNodes, "full node"), dir)
	// A port picked and released can be taken by someone else before the
	// node binds it. The genesis names the validators' ports, so the cure
	// is a restart of the whole network on fresh ports.
	for attempt := 1; ; attempt++ {
		err := n.launch(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == maxLaunchAttempts {
			return nil, err
		}
		n.logf("%v; restarting every node on new ports", err)
		if err := n.stopAll(); err != nil {
			return nil, err
		}
	}
	n.logf("ready")
	if cfg.Warmup > 0 {
		select {
		case <-time.After(cfg.Warmup):
		case <-ctx.Done():
			return nil, fmt.Errorf("warming up: %w", context.Cause(ctx))
		}
	}
	return n, nil
}

// maxLaunchAttempts bounds the restarts after a port was taken.
const maxLaunchAttempts = 3

// errPortTaken means a node could not bind the port picked for it.
var errPortTaken = errors.New("a node's port was taken before it could bind it")

// launch configures every home on fresh ports, starts the live nodes and
// waits until they are ready.
func (n *Network) launch(ctx context.Context) error {
	if n.fabric == nil {
		if err := n.configureHomes(); err != nil {
			return err
		}
	}
	for i, nd := range n.nodes {
		if !nd.Live() {
			continue
		}
		var err error
		if n.fabric != nil {
			err = nd.startCmd(n.fabric.Command(i, n.cfg.Binary, "node", "--home", nd.Dir))
		} else {
			err = nd.start(n.cfg.Binary)
		}
		if err != nil {
			return err
		}
	}
	return n.waitReady(ctx)
}

// stopAll stops every node and makes it startable again.
func (n *Network) stopAll() error {
	err := n.stopNodes()
	for _, nd := range n.nodes {
		nd.reset()
	}
	return err
}

// stopNodes stops every node at once.
func (n *Network) stopNodes() error {
	var wg sync.WaitGroup
	errs := make([]error, len(n.nodes))
	for i, nd := range n.nodes {
		wg.Go(func() { errs[i] = nd.stop(n.cfg.StopTimeout) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Dir is the directory holding every node's home.
func (n *Network) Dir() string { return n.dir }

// Nodes returns every node, validators first, down ones included.
func (n *Network) Nodes() []*Node { return n.nodes }

// Live returns the nodes meant to run.
func (n *Network) Live() []*Node {
	var out []*Node
	for _, nd := range n.nodes {
		if nd.Live() {
			out = append(out, nd)
		}
	}
	return out
}

func (n *Network) logf(format string, args ...any) {
	fmt.Fprintf(n.progress, format+"\n", args...)
}

// createHomes creates a home per node with its key; configureHomes fills
// in the rest.
func (n *Network) createHomes() error {
	cfg := n.cfg
	for i := range cfg.Validators {
		n.nodes = append(n.nodes, &Node{
			Name:   fmt.Sprintf("validator-%d", i),
			Role:   RoleValidator,
			Down:   i >= cfg.Validators-cfg.DownValidators,
			Silent: i >= cfg.Validators-cfg.DownValidators-cfg.SilentValidators && i < cfg.Validators-cfg.DownValidators,
		})
	}
	for i := range cfg.FullNodes {
		n.nodes = append(n.nodes, &Node{Name: fmt.Sprintf("fullnode-%d", i), Role: RoleFullNode})
	}
	for _, nd := range n.nodes {
		nd.Dir = filepath.Join(n.dir, nd.Name)
		k, err := home.Init(nd.Dir, cfg.NetworkID, n.nodeConfig(nd, nil), nil)
		if err != nil {
			return fmt.Errorf("%s: %w", nd.Name, err)
		}
		nd.Address, nd.PeerID, nd.pub = k.Address, k.PeerID, k.Private.GetPublic()
	}
	return nil
}

// configureHomes gives every node a fresh port and writes the genesis
// (which names the validators' addresses) and each node's config.
func (n *Network) configureHomes() error {
	cfg := n.cfg
	ports, err := pickPorts(len(n.nodes))
	if err != nil {
		return err
	}
	for i, nd := range n.nodes {
		nd.Port = ports[i]
	}
	genesis := validators.Genesis{NetworkID: cfg.NetworkID, Validators: []validators.GenesisMember{}}
	var liveValidators, fullNodes []string
	for _, nd := range n.nodes {
		if nd.Role == RoleFullNode {
			fullNodes = append(fullNodes, nd.Multiaddr())
			continue
		}
		listen, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", nd.Port))
		if err != nil {
			return fmt.Errorf("%s: %w", nd.Name, err)
		}
		m, err := validators.Member(nd.pub, []ma.Multiaddr{listen})
		if err != nil {
			return fmt.Errorf("%s: %w", nd.Name, err)
		}
		genesis.Validators = append(genesis.Validators, m)
		if nd.Live() {
			liveValidators = append(liveValidators, nd.Multiaddr())
		}
	}
	for _, nd := range n.nodes {
		if err := genesis.Save(filepath.Join(nd.Dir, home.GenesisFile)); err != nil {
			return fmt.Errorf("%s: %w", nd.Name, err)
		}
		// Full nodes bootstrap from the running validators; with none, from
		// each other.
		var boot []string
		if nd.Role == RoleFullNode {
			boot = liveValidators
			if len(boot) == 0 {
				for _, a := range fullNodes {
					if a != nd.Multiaddr() {
						boot = append(boot, a)
					}
				}
			}
		}
		if err := home.WriteJSON(filepath.Join(nd.Dir, home.ConfigFile), n.nodeConfig(nd, boot)); err != nil {
			return fmt.Errorf("%s: %w", nd.Name, err)
		}
		// Check each home the way `rainp2p node` will, before starting anything.
		h, err := home.Load(nd.Dir)
		if err != nil {
			return fmt.Errorf("%s: %w", nd.Name, err)
		}
		if _, err := h.P2PConfig(nil); err != nil {
			return fmt.Errorf("%s: %w", nd.Name, err)
		}
	}
	return nil
}

func (n *Network) nodeConfig(nd *Node, bootstrap []string) home.Config {
	c := home.DefaultConfig()
	c.ListenAddrs = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", nd.Port)}
	c.AdminAddr = "127.0.0.1:0"
	c.LogLevel = n.cfg.LogLevel
	c.Mode = n.cfg.Mode
	c.PubSub = n.cfg.PubSub
	c.Silent = nd.Silent
	c.Bootstrap = append([]string{}, bootstrap...)
	return c
}

// pickPorts is freePorts; tests replace it to provoke a port conflict.
var pickPorts = freePorts

// freePorts asks the system for count distinct free TCP ports on loopback.
func freePorts(count int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, count)
	for range count {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("picking a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitReady polls every live node until its admin API answers, validators
// see the other running validators, and everyone has a background peer.
func (n *Network) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ReadyTimeout)
	defer cancel()
	live := n.Live()
	liveValidators := 0
	for _, nd := range live {
		if nd.Role == RoleValidator {
			liveValidators++
		}
	}
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	for {
		var waiting []string
		for _, nd := range live {
			if exited, werr := nd.exited(); exited {
				if tail := nd.tail(20); strings.Contains(tail, "address already in use") {
					return fmt.Errorf("%s: %w (port %d)", nd.Name, errPortTaken, nd.Port)
				}
				return fmt.Errorf("%s exited during start-up (%v); log %s:\n%s", nd.Name, werr, nd.LogPath(), nd.tail(20))
			}
			if reason := n.notReady(ctx, nd, liveValidators, len(live)); reason != "" {
				waiting = append(waiting, nd.Name+": "+reason)
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && context.Cause(ctx) == ctx.Err() {
				return fmt.Errorf("nodes not ready after %v:\n  %s\n(logs under %s)", n.cfg.ReadyTimeout, strings.Join(waiting, "\n  "), n.dir)
			}
			return fmt.Errorf("waiting for nodes: %w", context.Cause(ctx))
		}
	}
}

// notReady says why nd is not ready yet, or "" when it is.
func (n *Network) notReady(ctx context.Context, nd *Node, liveValidators, live int) string {
	url := nd.readAdminURL()
	if url == "" {
		return "admin API not up"
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := n.api.status(sctx, url)
	if err != nil {
		return "status: " + err.Error()
	}
	if nd.Role == RoleValidator && st.Peers["raintree"] < liveValidators-1 {
		return fmt.Sprintf("connected to %d of %d other validators", st.Peers["raintree"], liveValidators-1)
	}
	if live > 1 && st.Peers["background"] < 1 {
		return "no background peer"
	}
	return ""
}

// Close stops every node (SIGTERM, then SIGKILL after StopTimeout) and,
// unless Keep is set, the run failed or a node could not be stopped,
// removes the directory; when it keeps the directory after a failure it
// says where on the progress writer. It is idempotent.
func (n *Network) Close() error {
	n.closeOnce.Do(func() {
		n.closeErr = n.stopNodes()
		n.api.close()
		if n.fabric != nil { // after the nodes: a namespace lives while a process is in it
			if err := n.fabric.Close(); err != nil {
				n.closeErr = errors.Join(n.closeErr, fmt.Errorf("removing namespaces: %w", err))
			}
		}
		switch {
		case n.preserve.Load():
			n.logf("keeping %s for inspection", n.dir)
		case n.closeErr != nil:
			// A node that did not stop may still write there.
			n.logf("some nodes did not stop cleanly; keeping %s (remove it once they are gone)", n.dir)
		case !n.cfg.Keep:
			if err := os.RemoveAll(n.dir); err != nil {
				n.closeErr = fmt.Errorf("removing %s: %w", n.dir, err)
			}
		}
	})
	return n.closeErr
}
