package p2p_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	lpnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/rainp2p/rainp2p/internal/netns"
	"github.com/rainp2p/rainp2p/p2p"
)

// inNetns is set in the child process that runs a test inside a private
// network namespace.
const inNetns = "RAINP2P_TEST_IN_NETNS"

// runInNetns re-runs the calling test in a child process inside a new
// network namespace, where 10.77.0.0/16 is local (so any address in it can
// be bound, and none is loopback, which the resource manager exempts from
// its per-IP limits). It reports whether the caller is that child.
func runInNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(inNetns) != "" {
		for _, args := range [][]string{{"link", "set", "lo", "up"}, {"route", "add", "local", "10.77.0.0/16", "dev", "lo"}} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v: %s", args, err, out)
			}
		}
		return true
	}
	if err := netns.Available(); err != nil {
		t.Skipf("needs a network namespace: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inNetns+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	t.Logf("in a private network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("child test: %v", err)
	}
	return false
}

// crowd creates n throwaway peers, each on its own host listening (and so
// dialing) from ips[i%len(ips)], and connects them to target with up to 16
// at once. It keeps the peers that got in and closes the rest.
func crowd(t *testing.T, target host.Host, n int, ips []string) (kept []host.Host, refused int) {
	t.Helper()
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		refusal atomic.Int64
		sem     = make(chan struct{}, 16)
	)
	info := peer.AddrInfo{ID: target.ID(), Addrs: target.Addrs()}
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			h := attacker(t, "/ip4/"+ips[i%len(ips)]+"/tcp/0")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := h.Connect(ctx, info); err != nil || target.Network().Connectedness(h.ID()) != lpnet.Connected {
				refusal.Add(1)
				_ = h.Close()
				return
			}
			mu.Lock()
			kept = append(kept, h)
			mu.Unlock()
		})
	}
	wg.Wait()
	return kept, int(refusal.Load())
}

// inboundFrom counts the target's connections from ip.
func inboundFrom(target host.Host, ip string) int {
	n := 0
	for _, c := range target.Network().Conns() {
		if a, err := manet.ToIP(c.RemoteMultiaddr()); err == nil && a.String() == ip && c.Stat().Direction == lpnet.DirInbound {
			n++
		}
	}
	return n
}

// 2,000 throwaway peer IDs (crowdSize: fewer under the race detector,
// where each host costs ~5x more to build), half from one address and half
// spread over a subnet, cannot take more than the per-IP and inbound
// limits allow, and a validator still gets in past the full inbound limit.
func TestThrowawayPeersCannotCrowdOutValidators(t *testing.T) {
	if !runInNetns(t) {
		return
	}
	const inbound = 64
	a := newArena(t, "/ip4/10.77.0.1/tcp/0", []string{"/ip4/10.77.0.2/tcp/0", "/ip4/10.77.0.3/tcp/0"}, func(c *p2p.Config) {
		c.Resources.ConnsInbound = inbound
	})
	victim := a.victim.host
	start := time.Now()

	half := crowdSize / 2
	one, refusedOne := crowd(t, victim, half, []string{"10.77.1.1"})
	fromOne := inboundFrom(victim, "10.77.1.1")
	t.Logf("one address: %d of %d peers got in, %d refused, %d connections from it", len(one), half, refusedOne, fromOne)
	if fromOne == 0 || fromOne > p2p.DefaultConnsPerIP {
		t.Errorf("%d connections from one address, want 1..%d", fromOne, p2p.DefaultConnsPerIP)
	}

	// The other half spread over addresses of one /24, 8 per address.
	var ips []string
	for i := 1; i <= half/8; i++ {
		ips = append(ips, fmt.Sprintf("10.77.2.%d", i))
	}
	spread, refusedSpread := crowd(t, victim, half, ips)
	st := a.victim.mod.Stats().Resources
	t.Logf("one subnet (%d addresses): %d of %d peers got in, %d refused; victim inbound %d (limit %d), blocked conns %d, took %v",
		len(ips), len(spread), half, refusedSpread, st.ConnsInbound, inbound, st.BlockedConns, time.Since(start).Round(time.Millisecond))
	if st.ConnsInbound > inbound+len(a.honest) {
		t.Errorf("%d inbound connections, limit %d", st.ConnsInbound, inbound)
	}
	if refusedSpread == 0 || st.BlockedConns == 0 {
		t.Errorf("no peer was refused (refused %d, blocked %d): the inbound limit was never reached", refusedSpread, st.BlockedConns)
	}

	// A newcomer that is not a validator is turned away; a validator that
	// reconnects now is admitted through the allowlist.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stranger := attacker(t, "/ip4/10.77.3.1/tcp/0")
	defer stranger.Close()
	if err := stranger.Connect(ctx, peer.AddrInfo{ID: victim.ID(), Addrs: victim.Addrs()}); err == nil && victim.Network().Connectedness(stranger.ID()) == lpnet.Connected {
		t.Error("a stranger got in past the full inbound limit")
	}
	v := a.honest[1]
	_ = v.host.Network().ClosePeer(victim.ID())
	waitFor(t, 10*time.Second, "the validator's old connection to close", func() bool {
		return victim.Network().Connectedness(v.host.ID()) != lpnet.Connected
	})
	if err := v.host.Connect(ctx, peer.AddrInfo{ID: victim.ID(), Addrs: victim.Addrs()}); err != nil {
		t.Fatalf("a validator was refused: %v", err)
	}
	if r := a.honestDelivery(t, 10, "crowded"); r != 1 {
		t.Errorf("honest delivery ratio %.3f with the victim crowded, want 1", r)
	}
	for _, h := range append(one, spread...) {
		_ = h.Close()
	}
}
