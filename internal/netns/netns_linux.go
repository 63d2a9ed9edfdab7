package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Capabilities the fabric needs (linux/capability.h).
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// runDir is where `ip netns` keeps named namespaces.
const runDir = "/run/netns"

// namePrefix starts every namespace this package creates; the creator's
// PID follows, so stale ones can be recognised.
const namePrefix = "rp2p-"

// Available reports whether this process can build a fabric, and if not,
// an ErrUnavailable saying what is missing.
func Available() error {
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: iproute2's ip command is not installed (apt-get install iproute2): %v", ErrUnavailable, err)
	}
	eff, err := effectiveCaps()
	if err != nil {
		return fmt.Errorf("%w: reading capabilities: %v", ErrUnavailable, err)
	}
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
	}{{capNetAdmin, "CAP_NET_ADMIN"}, {capSysAdmin, "CAP_SYS_ADMIN"}} {
		if eff&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: this process lacks %s (run as root, or grant them with setcap/--cap-add)", ErrUnavailable, strings.Join(missing, " and "))
	}
	return nil
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no CapEff line in /proc/self/status")
}

// fabrics numbers the fabrics of this process.
var fabrics atomic.Uint64

// Fabric is a hub namespace with a bridge and one namespace per node.
// Close removes them all.
type Fabric struct {
	id    string
	hub   string
	nodes []string
}

// New builds a fabric of n node namespaces. It first removes namespaces
// left behind by fabrics whose process has died. On error it removes what
// it built.
func New(ctx context.Context, n int) (_ *Fabric, err error) {
	if err := checkCount(n); err != nil {
		return nil, err
	}
	if err := Available(); err != nil {
		return nil, err
	}
	RemoveStale(ctx)
	id := fmt.Sprintf("%s%d-%d", namePrefix, os.Getpid(), fabrics.Add(1))
	f := &Fabric{id: id, hub: id + "-hub"}
	defer func() {
		if err != nil {
			err = errors.Join(err, f.Close())
		}
	}()
	if err := ip(ctx, "netns", "add", f.hub); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"-n", f.hub, "link", "set", "lo", "up"},
		{"-n", f.hub, "link", "add", "br0", "type", "bridge"},
		{"-n", f.hub, "link", "set", "br0", "up"},
	}
	if err := ipAll(ctx, steps); err != nil {
		return nil, err
	}
	bits := Prefix.Bits()
	for i := range n {
		ns := fmt.Sprintf("%s-%d", id, i)
		if err := ip(ctx, "netns", "add", ns); err != nil {
			return nil, err
		}
		f.nodes = append(f.nodes, ns)
		veth := fmt.Sprintf("v%d", i)
		if err := ipAll(ctx, [][]string{
			{"-n", f.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"-n", f.hub, "link", "set", veth, "master", "br0", "up"},
			{"-n", ns, "link", "set", "lo", "up"},
			{"-n", ns, "addr", "add", fmt.Sprintf("%s/%d", NodeIP(i), bits), "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
		}); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Name is the namespace of node i.
func (f *Fabric) Name(i int) string { return f.nodes[i] }

// Len is the number of node namespaces.
func (f *Fabric) Len() int { return len(f.nodes) }

// Command runs name with args inside node i's namespace.
func (f *Fabric) Command(i int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", f.nodes[i], name}, args...)...)
}

// DialContext dials addr from inside node i's namespace: the socket is
// created there, on a thread locked for the purpose, so it reaches the
// node's loopback.
func (f *Fabric) DialContext(ctx context.Context, i int, network, addr string) (net.Conn, error) {
	target, err := unix.Open(filepath.Join(runDir, f.nodes[i]), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", f.nodes[i], err)
	}
	defer unix.Close(target)
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("netns: opening this thread's namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("netns: entering %s: %w", f.nodes[i], err)
	}
	var d net.Dialer
	conn, derr := d.DialContext(ctx, network, addr)
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// The thread stays locked, so it exits with this goroutine instead
		// of running others in the wrong namespace.
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("netns: leaving %s: %w", f.nodes[i], err)
	}
	runtime.UnlockOSThread()
	return conn, derr
}

// Close deletes every namespace of the fabric (the veths and the bridge go
// with them). Processes still running in a namespace keep it alive until
// they exit, so stop them first. It is idempotent.
func (f *Fabric) Close() error {
	var errs []error
	for _, ns := range append(f.nodes, f.hub) {
		if err := deleteNS(ns); err != nil {
			errs = append(errs, err)
		}
	}
	f.nodes = nil
	f.hub = ""
	return errors.Join(errs...)
}

func deleteNS(ns string) error {
	if ns == "" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(runDir, ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return ip(context.Background(), "netns", "delete", ns)
}

// RemoveStale deletes namespaces left by fabrics whose process is gone (a
// run killed with SIGKILL cannot clean up after itself).
func RemoveStale(ctx context.Context) {
	for _, ns := range List() {
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(ns, namePrefix), "-", 2)[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = ip(ctx, "netns", "delete", ns)
		}
	}
}

// List names the namespaces this package created that still exist.
func List() []string {
	entries, err := os.ReadDir(runDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), namePrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// ID starts the name of every namespace of f.
func (f *Fabric) ID() string { return f.id }

func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func ipAll(ctx context.Context, steps [][]string) error {
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return err
		}
	}
	return nil
}
