package localnet

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/rainp2p/rainp2p/internal/home"
	"github.com/rainp2p/rainp2p/internal/netns"
	"github.com/rainp2p/rainp2p/internal/testnet"
)

// In NetNS mode every node has a namespace of its own, so ports need not be
// picked: each listens on NetNSPort at its own address, and its admin API
// on 127.0.0.1:(NetNSAdminPortBase + its index) inside its namespace. The
// admin ports differ so the orchestrator's HTTP client, which dials into
// the namespaces, can tell the nodes apart by port.
const (
	NetNSPort          = 4001
	NetNSAdminPortBase = 9000
)

// prepareNetNS writes the homes with `rainp2p testnet` (one host per node:
// its namespace address), applies the run's faults, and builds the
// namespaces.
func (n *Network) prepareNetNS(ctx context.Context) error {
	cfg := n.cfg
	tc := testnet.DefaultConfig(n.dir)
	tc.Validators, tc.FullNodes = cfg.Validators, cfg.FullNodes
	tc.NetworkID = cfg.NetworkID
	tc.Port = NetNSPort
	tc.Node.Mode, tc.Node.PubSub, tc.Node.LogLevel = cfg.Mode, cfg.PubSub, cfg.LogLevel
	total := cfg.Validators + cfg.FullNodes
	for i := range total {
		tc.Hosts = append(tc.Hosts, netns.NodeIP(i).String())
	}
	written, err := testnet.Write(tc)
	if err != nil {
		return err
	}
	var liveValidators []string
	for i, w := range written {
		nd := &Node{
			Name: w.Name, Dir: w.Dir, Role: RoleFullNode,
			Address: w.Key.Address, PeerID: w.Key.PeerID, pub: w.Key.Private.GetPublic(),
			Host: w.Host, Port: w.Port,
		}
		if w.Validator {
			nd.Role = RoleValidator
			nd.Down = i >= cfg.Validators-cfg.DownValidators
			nd.Silent = !nd.Down && i >= cfg.Validators-cfg.DownValidators-cfg.SilentValidators
			if !nd.Down {
				liveValidators = append(liveValidators, nd.Multiaddr())
			}
		}
		n.nodes = append(n.nodes, nd)
	}
	// The homes stay as testnet wrote them, but for the admin port, the
	// silent flag and, when some validators are down, bootstrap lists
	// naming only running ones.
	for i, nd := range n.nodes {
		h, err := home.Load(nd.Dir)
		if err != nil {
			return fmt.Errorf("%s: %w", nd.Name, err)
		}
		c := h.Config
		c.AdminAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(NetNSAdminPortBase+i))
		c.Silent = nd.Silent
		if cfg.DownValidators > 0 && nd.Role == RoleFullNode {
			c.Bootstrap = append([]string{}, liveValidators...)
		}
		if err := home.WriteJSON(filepath.Join(nd.Dir, home.ConfigFile), c); err != nil {
			return fmt.Errorf("%s: %w", nd.Name, err)
		}
	}
	f, err := netns.New(ctx, total)
	if err != nil {
		return err
	}
	n.fabric = f
	n.api = newClientDialer(n.dialAdmin)
	n.logf("namespaces %s-0 ... %s-%d on a bridge, addresses %s ... %s", f.ID(), f.ID(), total-1, netns.NodeIP(0), netns.NodeIP(total-1))
	return nil
}

// Namespace is the network namespace nd runs in, "" without NetNS.
func (n *Network) Namespace(nd *Node) string {
	if n.fabric == nil {
		return ""
	}
	for i, o := range n.nodes {
		if o == nd {
			return n.fabric.Name(i)
		}
	}
	return ""
}

// dialAdmin dials a node's admin API inside its namespace, finding the
// node by the admin port.
func (n *Network) dialAdmin(ctx context.Context, network, addr string) (net.Conn, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(p)
	i := port - NetNSAdminPortBase
	if err != nil || i < 0 || i >= len(n.nodes) {
		return nil, fmt.Errorf("%s is no node's admin address", addr)
	}
	return n.fabric.DialContext(ctx, i, network, addr)
}
