package p2p_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/identity"
)

// The JavaScript side of these tests lives in interop/js: a codec of the
// envelope and a full node on js-libp2p's stock gossipsub, both written
// from docs/PROTOCOL.md alone.

// jsInterop returns interop/js once node and the packages `npm ci`
// installs there are present. Without them the test is skipped, unless
// RAINP2P_JS_INTEROP=require (.ci/run sets it once it has installed
// them), when it fails.
func jsInterop(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "interop", "js"))
	if err != nil {
		t.Fatal(err)
	}
	_, noNode := exec.LookPath("node")
	_, noModules := os.Stat(filepath.Join(dir, "node_modules"))
	if noNode != nil || noModules != nil {
		const why = "needs Node.js 20 or later and `npm ci` in interop/js"
		if os.Getenv("RAINP2P_JS_INTEROP") == "require" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	return dir
}

// An implementation written from docs/PROTOCOL.md alone, in another
// language, computes every test vector of its section 9 and opens the
// envelope there.
func TestTheProtocolDocIsEnoughForAJavaScriptCodec(t *testing.T) {
	dir := jsInterop(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "vectors.mjs", filepath.Join("..", "..", "docs", "PROTOCOL.md"))
	cmd.Dir = dir
	out, err := cmd.Output()
	var res struct {
		OK      bool     `json:"ok"`
		Checked []string `json:"checked"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil || err != nil || !res.OK {
		t.Fatalf("vectors.mjs: %v, %s", err, out)
	}
	if len(res.Checked) < 10 {
		t.Fatalf("vectors.mjs checked only %v", res.Checked)
	}
}

// jsEvent is a line interop/js/fullnode.mjs writes.
type jsEvent struct {
	Event   string `json:"event"`
	PeerID  string `json:"peer_id"`
	Address string `json:"address"`
	ID      string `json:"id"`
	Nonce   string `json:"nonce"`
	From    string `json:"from"`
	Text    string `json:"text"`
	Error   string `json:"error"`
}

// jsNode is interop/js/fullnode.mjs running as a child process.
type jsNode struct {
	stdin  io.WriteCloser
	events chan jsEvent
}

func startJSNode(t *testing.T, dir, network, connect string) *jsNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", "fullnode.mjs", "--network", network, "--connect", connect)
	cmd.Dir, cmd.Stderr, cmd.WaitDelay = dir, &testLog{t}, 5*time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	j := &jsNode{stdin: stdin, events: make(chan jsEvent, 256)}
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(j.events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e jsEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = jsEvent{Event: "error", Error: "not JSON: " + sc.Text()}
			}
			j.events <- e
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close() // the node stops at the end of its input
		<-read
		if err := cmd.Wait(); err != nil && ctx.Err() == nil {
			t.Errorf("fullnode.mjs: %v", err)
		}
		cancel()
	})
	return j
}

// next returns the next event of kind, failing on an error event or
// after d.
func (j *jsNode) next(t *testing.T, kind string, d time.Duration) jsEvent {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case e, ok := <-j.events:
			switch {
			case !ok:
				t.Fatalf("fullnode.mjs ended while waiting for %q", kind)
			case e.Event == "error":
				t.Fatalf("fullnode.mjs: %s", e.Error)
			case e.Event == kind:
				return e
			}
		case <-timeout:
			t.Fatalf("fullnode.mjs: no %q within %v", kind, d)
		}
	}
}

func (j *jsNode) command(t *testing.T, cmd any) {
	t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.stdin.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
}

// testLog writes what it is given to the test's log.
type testLog struct{ t *testing.T }

func (l *testLog) Write(b []byte) (int, error) {
	l.t.Logf("fullnode.mjs: %s", b)
	return len(b), nil
}

// A stock js-libp2p node (libp2p v2, @chainsafe/libp2p-gossipsub) that
// knows a single validator takes part as a full node, with lazy gossip
// (the default) and eager: it gets every validator's broadcast, checked
// as the document says, its own broadcast reaches every validator, and
// direct messages go both ways between it and its validator.
func TestStockJSLibp2pFullNodeBehindOneValidator(t *testing.T) {
	dir := jsInterop(t)
	for _, lazy := range []bool{true, false} {
		t.Run(map[bool]string{false: "eager", true: "lazy"}[lazy], func(t *testing.T) {
			jsFullNodeBehindOneValidator(t, dir, func(c *p2p.Config) { c.Background.Gossip.LazyAmongValidators = lazy })
		})
	}
}

func jsFullNodeBehindOneValidator(t *testing.T, dir string, tweak func(*p2p.Config)) {
	const netID = "module-test"
	nodes := network(t, 9, 0, tweak)
	entry := nodes[0]
	js := startJSNode(t, dir, netID, fmt.Sprintf("%s/p2p/%s", entry.host.Addrs()[0], entry.host.ID()))
	ready := js.next(t, "ready", 30*time.Second)
	waitFor(t, 10*time.Second, "the validator to see the stock node's subscription", func() bool {
		return entry.mod.Status().Peers[string(p2p.RouterBackground)] >= 1
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i, n := range nodes {
		text := fmt.Sprintf("from validator %d", i)
		env, err := n.mod.Broadcast(ctx, wrapperspb.String(text))
		if err != nil {
			t.Fatalf("validator %d: %v", i, err)
		}
		got := js.next(t, "message", 20*time.Second)
		if got.Nonce != strconv.FormatUint(env.GetNonce(), 10) || got.From != n.key.Address.String() || got.Text != text {
			t.Fatalf("validator %d's broadcast: the stock node got %+v, want nonce %d from %s", i, got, env.GetNonce(), n.key.Address)
		}
	}

	// Direct sends both ways (section 5): framed envelopes addressed to
	// the receiver, on the background unicast protocol.
	jsAddr, err := identity.ParseAddress(ready.Address)
	if err != nil {
		t.Fatal(err)
	}
	env, err := entry.mod.Send(ctx, jsAddr, wrapperspb.String("direct to js"))
	if err != nil {
		t.Fatal(err)
	}
	if got := js.next(t, "direct", 20*time.Second); got.Nonce != strconv.FormatUint(env.GetNonce(), 10) || got.From != entry.key.Address.String() || got.Text != "direct to js" {
		t.Fatalf("the stock node got %+v, want nonce %d from %s", got, env.GetNonce(), entry.key.Address)
	}
	js.command(t, map[string]any{"send": map[string]string{"to": entry.host.ID().String(), "text": "direct from js"}})
	sent := js.next(t, "sent", 20*time.Second)
	directNonce, err := strconv.ParseUint(sent.Nonce, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the validator to deliver the stock node's direct message", func() bool {
		return len(entry.deliveries(directNonce)) == 1
	})
	if d := entry.deliveries(directNonce)[0]; d.From != jsAddr || d.Broadcast {
		t.Fatalf("direct delivery from %s (broadcast %v), want a unicast from %s", d.From, d.Broadcast, jsAddr)
	}

	js.command(t, map[string]string{"publish": "from a stock js-libp2p node"})
	pub := js.next(t, "published", 20*time.Second)
	nonce, err := strconv.ParseUint(pub.Nonce, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		waitFor(t, 20*time.Second, "a validator to deliver the stock node's broadcast", func() bool {
			return len(n.deliveries(nonce)) == 1
		})
		if d := n.deliveries(nonce)[0]; d.From.String() != ready.Address {
			t.Errorf("validator %d: delivery from %s, want the stock node %s", i, d.From, ready.Address)
		}
	}
}
