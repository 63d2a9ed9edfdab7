package localnet

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/internal/home"
	"github.com/rainp2p/rainp2p/p2p/identity"
)

// Role is what a node is in the validator set.
type Role string

// The roles, spelled as p2p.Status spells them.
const (
	RoleValidator Role = "validator"
	RoleFullNode  Role = "fullnode"
)

// State is what a node is doing.
type State string

// The states a node can be in.
const (
	StateRunning State = "running"
	StateSilent  State = "silent"  // running, receiving, never forwarding
	StateDown    State = "down"    // in the validator set, never started
	StateExited  State = "exited"  // started, then died on its own
	StateStopped State = "stopped" // stopped by Close
)

// LogFile is the file in each home directory that holds the node's output.
const LogFile = "node.log"

// Node is one member of the local network and, when it runs, its process.
type Node struct {
	Name    string
	Role    Role
	Silent  bool
	Down    bool
	Dir     string
	Address identity.Address
	PeerID  peer.ID
	// Host is the IP address the node listens on; Port its TCP port there.
	Host string
	Port int

	pub crypto.PubKey

	mu       sync.Mutex
	adminURL string
	cmd      *exec.Cmd
	done     chan struct{} // closed once the process has been reaped
	waitErr  error
	stopping bool
}

// Live reports whether the node is meant to run.
func (n *Node) Live() bool { return !n.Down }

// LogPath is where the node's stdout and stderr go.
func (n *Node) LogPath() string { return filepath.Join(n.Dir, LogFile) }

// Multiaddr is the node's dialable address, with its peer ID.
func (n *Node) Multiaddr() string {
	host := n.Host
	if host == "" {
		host = "127.0.0.1"
	}
	return fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", host, n.Port, n.PeerID)
}

// AdminURL is the node's admin API base URL, empty until it is known.
func (n *Node) AdminURL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.adminURL
}

// PID is the node's process ID, 0 if it was never started.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// State reports what the node is doing now.
func (n *Node) State() State {
	if n.Down {
		return StateDown
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done != nil {
		select {
		case <-n.done:
			if n.stopping {
				return StateStopped
			}
			return StateExited
		default:
		}
	}
	if n.Silent {
		return StateSilent
	}
	return StateRunning
}

// exited returns the process's exit error once it has exited.
func (n *Node) exited() (bool, error) {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return false, nil
	}
	select {
	case <-done:
		return true, n.waitErr
	default:
		return false, nil
	}
}

// start launches `binary node --home DIR` in its own process group, so a
// terminal's Ctrl-C reaches only the orchestrator, which then stops the
// nodes in order.
func (n *Node) start(binary string) error {
	return n.startCmd(exec.Command(binary, "node", "--home", n.Dir))
}

// startCmd starts cmd, which runs the node (perhaps through a wrapper that
// execs it, such as `ip netns exec`).
func (n *Node) startCmd(cmd *exec.Cmd) error {
	logf, err := os.OpenFile(n.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: opening log: %w", n.Name, err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: starting %s: %w", n.Name, cmd.Path, err)
	}
	done := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.waitErr = err
		n.mu.Unlock()
		close(done)
	}()
	return nil
}

// reset forgets a stopped process so the node can be started again. A
// killed node leaves a stale admin.url behind; its log is kept aside.
func (n *Node) reset() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cmd, n.done, n.waitErr, n.stopping, n.adminURL = nil, nil, nil, false, ""
	_ = os.Remove(filepath.Join(n.Dir, home.AdminURLFile))
	_ = os.Rename(n.LogPath(), n.LogPath()+".previous")
}

// readAdminURL picks up DIR/admin.url once the node has written all of it.
func (n *Node) readAdminURL() string {
	if u := n.AdminURL(); u != "" {
		return u
	}
	b, err := os.ReadFile(filepath.Join(n.Dir, home.AdminURLFile))
	if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
		return ""
	}
	u := strings.TrimSpace(string(b))
	if !strings.HasPrefix(u, "http://") {
		return ""
	}
	n.mu.Lock()
	n.adminURL = u
	n.mu.Unlock()
	return u
}

// stop sends SIGTERM to the node's process group, waits up to timeout,
// then sends SIGKILL and waits for the process to be reaped.
func (n *Node) stop(timeout time.Duration) error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.stopping = true
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	signalGroup(cmd.Process.Pid, syscall.SIGTERM)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-done:
		return nil
	case <-timer.C:
	}
	signalGroup(cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-done:
		return fmt.Errorf("%s (pid %d) ignored SIGTERM for %v and was killed", n.Name, cmd.Process.Pid, timeout)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) survived SIGKILL", n.Name, cmd.Process.Pid)
	}
}

// signalGroup signals the process group led by pid, falling back to the
// process alone.
func signalGroup(pid int, sig syscall.Signal) {
	if err := syscall.Kill(-pid, sig); err != nil {
		_ = syscall.Kill(pid, sig)
	}
}

// tail returns up to the last lines lines of the node's log.
func (n *Node) tail(lines int) string {
	f, err := os.Open(n.LogPath())
	if err != nil {
		return ""
	}
	defer f.Close()
	const window = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > window {
		_, _ = f.Seek(st.Size()-window, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
