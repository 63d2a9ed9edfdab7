package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needFabric skips, saying why, only where namespaces are really
// unavailable (no ip command, or no CAP_NET_ADMIN/CAP_SYS_ADMIN).
func needFabric(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("SKIPPED, network namespaces unavailable here: %v", err)
	}
}

func rootLinks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func TestAFabricGivesEachNodeItsOwnAddressAndIsRemovedOnClose(t *testing.T) {
	needFabric(t)
	before := rootLinks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := New(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range 2 {
		out, err := f.Command(i, "ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
		if err != nil || !strings.Contains(string(out), NodeIP(i).String()+"/16") {
			t.Fatalf("node %d eth0: %s %v", i, out, err)
		}
	}
	if after := rootLinks(t); !slices.Equal(before, after) {
		t.Fatalf("the caller's namespace changed:\nbefore %v\nafter  %v", before, after)
	}

	// A dial into a node's namespace reaches its loopback, not ours.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := f.DialContext(ctx, 0, "tcp", ln.Addr().String()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dialing our listener from inside the namespace: %v, want connection refused", err)
	}
	c, err := net.Dial("tcp", ln.Addr().String()) // and this thread is back home
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	id := f.ID()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range List() {
		if strings.HasPrefix(ns, id+"-") {
			t.Fatalf("namespace %s left after Close", ns)
		}
	}
}

// A run killed with SIGKILL cannot remove its namespaces; the next fabric
// removes those whose process is gone, and leaves live ones alone.
func TestStaleNamespacesOfDeadRunsAreRemoved(t *testing.T) {
	needFabric(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("%s%d-1-hub", namePrefix, dead.Process.Pid)
	if err := ip(context.Background(), "netns", "add", stale); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deleteNS(stale) })
	live := fmt.Sprintf("%s%d-1-hub", namePrefix, os.Getppid()) // our parent outlives the test
	if err := ip(context.Background(), "netns", "add", live); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deleteNS(live) })

	RemoveStale(context.Background())
	got := List()
	if slices.Contains(got, stale) {
		t.Errorf("the namespace %s of a dead run is still there", stale)
	}
	if !slices.Contains(got, live) {
		t.Errorf("the namespace %s of a live process was removed", live)
	}
}
