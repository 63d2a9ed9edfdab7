package localnet

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rainp2p/rainp2p/internal/home"
	"github.com/rainp2p/rainp2p/internal/netns"
)

// needNetNS skips, saying so, only where namespaces are really unavailable;
// as root (this machine, CI) the netns tests run.
func needNetNS(t *testing.T) {
	t.Helper()
	if err := netns.Available(); err != nil {
		t.Skipf("SKIPPED, network namespaces unavailable here: %v", err)
	}
}

// assertNoNamespaces fails if a namespace of this process is left.
func assertNoNamespaces(t *testing.T) {
	t.Helper()
	for _, ns := range netns.List() {
		if strings.HasPrefix(ns, "rp2p-"+itoa(os.Getpid())+"-") {
			t.Errorf("namespace %s left behind", ns)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// Homes written as `rainp2p testnet --hosts` writes them, started with
// `rainp2p node` each in its own namespace, listen on non-loopback
// addresses, form one network, and deliver every broadcast and unicast.
func TestNetNSTestnetHomesDeliverEveryBroadcast(t *testing.T) {
	needNetNS(t)
	cfg := testConfig(t)
	cfg.NetNS = true
	cfg.Validators, cfg.FullNodes = 4, 2
	ctx := t.Context()
	n, err := Start(ctx, cfg, &testWriter{t: t})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	pids := livePIDs(t, n)
	defer func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		assertGone(t, pids, cfg.Dir)
		assertNoNamespaces(t)
	}()
	for i, nd := range n.Nodes() {
		h, err := home.Load(nd.Dir)
		if err != nil {
			t.Fatal(err)
		}
		want := "/ip4/" + netns.NodeIP(i).String() + "/tcp/"
		if !strings.HasPrefix(h.Config.ListenAddrs[0], "/ip4/0.0.0.0/") || !strings.HasPrefix(h.Config.AnnounceAddrs[0], want) {
			t.Fatalf("%s listens on %v and announces %v, want 0.0.0.0 and %s...", nd.Name, h.Config.ListenAddrs, h.Config.AnnounceAddrs, want)
		}
		st, err := n.api.status(ctx, nd.AdminURL())
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range st.ListenAddrs {
			if !strings.HasPrefix(a, "/ip4/10.77.") {
				t.Fatalf("%s advertises %s, want only its namespace address", nd.Name, a)
			}
		}
	}
	rep, err := n.Exercise(ctx)
	if err != nil {
		t.Fatalf("Exercise: %v", err)
	}
	if !rep.OK || rep.Missing != 0 || rep.DuplicateDeliveries != 0 || rep.Delivered != rep.Expected || rep.Broadcasts != cfg.Broadcasts {
		t.Fatalf("report %+v", rep)
	}
}

func TestNetNSCleansUpWhenStartFails(t *testing.T) {
	needNetNS(t)
	cfg := testConfig(t)
	cfg.NetNS = true
	cfg.Validators, cfg.FullNodes = 2, 1
	cfg.ReadyTimeout = time.Millisecond
	_, err := Run(t.Context(), cfg, &testWriter{t: t})
	if err == nil || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("Run = %v, want nodes not ready", err)
	}
	assertGone(t, nil, cfg.Dir)
	assertNoNamespaces(t)
}

// The CLI refuses --netns clearly when the capabilities are missing: run it
// with them dropped from its bounding set.
func TestNetNSRefusesWithoutCapabilities(t *testing.T) {
	needNetNS(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skipf("SKIPPED, no setpriv to drop capabilities with: %v", err)
	}
	out, err := exec.Command(setpriv, "--bounding-set=-net_admin,-sys_admin", binary, "localnet", "--netns", "--dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "CAP_NET_ADMIN and CAP_SYS_ADMIN") {
		t.Fatalf("localnet --netns without capabilities: %v\n%s", err, out)
	}
}

// Ctrl-C and SIGHUP to a kept network stop every node and remove every
// namespace.
func TestNetNSSignalsRemoveNamespacesAndProcesses(t *testing.T) {
	needNetNS(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(binary, "localnet", "--netns", "--keep", "--validators", "2", "--fullnodes", "1",
				"--broadcasts", "1", "--unicasts", "0", "--dir", dir)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ready := make(chan struct{})
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					if strings.Contains(sc.Text(), "press Ctrl-C") {
						close(ready)
					}
				}
			}()
			select {
			case <-ready:
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("the network never came up:\n%s", stderr.String())
			}
			prefix := "rp2p-" + itoa(cmd.Process.Pid) + "-"
			var ours []string
			for _, ns := range netns.List() {
				if strings.HasPrefix(ns, prefix) {
					ours = append(ours, ns)
				}
			}
			if len(ours) != 4 { // hub + 3 nodes
				t.Fatalf("namespaces %v, want a hub and 3 nodes", ours)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("localnet did not stop on %v", sig)
			}
			for _, ns := range netns.List() {
				if strings.HasPrefix(ns, prefix) {
					t.Errorf("namespace %s left after %v", ns, sig)
				}
			}
			assertGone(t, nil, dir)
		})
	}
}
