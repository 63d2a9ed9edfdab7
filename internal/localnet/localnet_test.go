package localnet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rainp2p/rainp2p/internal/admin"
)

// binary is the rainp2p executable TestMain builds once for every test.
var binary string

func TestMain(m *testing.M) {
	if os.Getenv(signalHelperEnv) != "" {
		os.Exit(signalHelper())
	}
	dir, err := os.MkdirTemp("", "rainp2p-localnet-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary, err = buildBinary(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// buildBinary builds ./cmd/rainp2p from the module root into dir.
func buildBinary(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "rainp2p")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/rainp2p")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building rainp2p: %w\n%s", err, out)
	}
	return bin, nil
}

// testConfig is a quick network: few messages, short waits.
func testConfig(t *testing.T) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Binary = binary
	cfg.Dir = t.TempDir()
	cfg.Broadcasts = 4
	cfg.Unicasts = 4
	cfg.Warmup = time.Second
	cfg.Grace = 500 * time.Millisecond
	return cfg
}

// testWriter is a progress writer that logs each line and lets a test act
// when a line appears.
type testWriter struct {
	t      *testing.T
	mu     sync.Mutex
	buf    bytes.Buffer
	onLine func(string)
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		line = strings.TrimSuffix(line, "\n")
		w.t.Log(line)
		if w.onLine != nil {
			w.onLine(line)
		}
	}
}

func TestDefaultNetworkDeliversEveryMessageOnce(t *testing.T) {
	cfg := testConfig(t)
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
		if _, err := os.Stat(n.Dir()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("network directory %s still exists after Close: %v", n.Dir(), err)
		}
	}()

	probe := n.Live()[0]
	before := scrapeCounters(t, probe.AdminURL())

	rep, err := n.Exercise(ctx)
	if err != nil {
		t.Fatalf("Exercise: %v", err)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + table.String())
	// 4 broadcasts reach the 7 other nodes each; 4 unicasts reach 1 each.
	if !rep.OK || rep.Expected != 4*7+4 || rep.Delivered != rep.Expected || rep.Missing != 0 {
		t.Fatalf("report: ok=%v expected=%d delivered=%d missing=%d detail=%v errors=%v",
			rep.OK, rep.Expected, rep.Delivered, rep.Missing, rep.MissingDetail, rep.Errors)
	}
	var viaRainTree int
	for _, nr := range rep.Nodes {
		if nr.State != StateRunning {
			t.Errorf("%s: state %s, want running", nr.Name, nr.State)
		}
		if nr.Role == RoleFullNode && nr.ViaRainTree != 0 {
			t.Errorf("%s: a full node delivered %d messages via RainTree", nr.Name, nr.ViaRainTree)
		}
		if nr.Role == RoleValidator {
			viaRainTree += nr.ViaRainTree
		}
	}
	if viaRainTree == 0 {
		t.Error("no validator delivered anything via RainTree")
	}

	after := scrapeCounters(t, probe.AdminURL())
	var moved []string
	for name, v := range after {
		if v > before[name] {
			moved = append(moved, name)
		}
	}
	if len(moved) == 0 {
		t.Errorf("no rainp2p_ metric on %s moved while messages flowed (before %v, after %v)", probe.Name, before, after)
	}

	t.Run("admin API rejects bad requests", func(t *testing.T) {
		for _, tt := range []struct {
			name, path, body string
			want             int
		}{
			{"send to a malformed address", "/v1/send", `{"to":"not-hex","payload":"x"}`, http.StatusBadRequest},
			{"send to a short address", "/v1/send", `{"to":"abcd","payload":"x"}`, http.StatusBadRequest},
			{"send with an unknown field", "/v1/send", `{"to":"` + n.Live()[1].Address.String() + `","payload":"x","extra":1}`, http.StatusBadRequest},
			{"broadcast with a target", "/v1/broadcast", `{"to":"` + n.Live()[1].Address.String() + `","payload":"x"}`, http.StatusBadRequest},
			{"broadcast that is not JSON", "/v1/broadcast", `payload`, http.StatusBadRequest},
		} {
			t.Run(tt.name, func(t *testing.T) {
				resp, err := http.Post(probe.AdminURL()+tt.path, "application/json", strings.NewReader(tt.body))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != tt.want {
					t.Errorf("status %d, want %d (%s)", resp.StatusCode, tt.want, body)
				}
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || !bytes.Contains(body, []byte(`"error"`)) {
					t.Errorf("want a JSON error, got %q: %s", ct, body)
				}
			})
		}
	})
}

func TestFaultyNetworkStillDeliversEveryMessageOnce(t *testing.T) {
	cfg := testConfig(t)
	cfg.Validators, cfg.DownValidators, cfg.SilentValidators, cfg.FullNodes = 5, 1, 1, 2
	rep, err := Run(t.Context(), cfg, &testWriter{t: t})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	assertGone(t, nil, cfg.Dir)
	var table bytes.Buffer
	_ = rep.WriteTable(&table)
	t.Log("\n" + table.String())
	// 6 live nodes (silent included): each broadcast reaches 5; each unicast 1.
	if !rep.OK || rep.Expected != 4*5+4 {
		t.Fatalf("report: ok=%v expected=%d missing=%v errors=%v", rep.OK, rep.Expected, rep.MissingDetail, rep.Errors)
	}
	states := map[State]int{}
	for _, nr := range rep.Nodes {
		states[nr.State]++
	}
	if states[StateDown] != 1 || states[StateSilent] != 1 || states[StateRunning] != 5 {
		t.Errorf("states %v, want 1 down, 1 silent and 5 running", states)
	}
}

func TestInterruptedRunLeavesNoProcess(t *testing.T) {
	for _, tt := range []struct {
		name, at string
	}{
		{"while starting", "starting "},
		{"while sending", "broadcast 2/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Validators, cfg.FullNodes = 3, 2
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			w := &testWriter{t: t, onLine: func(line string) {
				if strings.HasPrefix(line, tt.at) {
					cancel()
				}
			}}
			_, err := Run(ctx, cfg, w)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v, want context.Canceled", err)
			}
			assertGone(t, nil, cfg.Dir)
		})
	}
}

func TestNodeThatCannotStartIsReported(t *testing.T) {
	cfg := testConfig(t)
	cfg.Validators, cfg.FullNodes = 1, 1
	cfg.Binary = filepath.Join(t.TempDir(), "broken")
	if err := os.WriteFile(cfg.Binary, []byte("#!/bin/sh\necho cannot start >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := Run(t.Context(), cfg, &testWriter{t: t})
	if err == nil || !strings.Contains(err.Error(), "exited during start-up") || !strings.Contains(err.Error(), "cannot start") {
		t.Fatalf("Run = %v, want an error naming the node and quoting its log", err)
	}
	if time.Since(start) > cfg.ReadyTimeout/2 {
		t.Errorf("took %v to notice; should not wait for the ready timeout", time.Since(start))
	}
	assertGone(t, nil, cfg.Dir)
}

func TestConfigValidate(t *testing.T) {
	valid := DefaultConfig()
	valid.Binary = "/bin/rainp2p"
	for _, tt := range []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"the default is valid", func(*Config) {}, true},
		{"full nodes only is valid", func(c *Config) { c.Validators = 0 }, true},
		{"validators only is valid", func(c *Config) { c.FullNodes = 0 }, true},
		{"every validator down or silent but full nodes sending is valid", func(c *Config) { c.DownValidators, c.SilentValidators = 2, 2 }, true},
		{"reference mode and floodsub are valid", func(c *Config) { c.Mode, c.PubSub = "reference", "floodsub" }, true},
		{"no binary", func(c *Config) { c.Binary = "" }, false},
		{"negative validators", func(c *Config) { c.Validators = -1 }, false},
		{"negative full nodes", func(c *Config) { c.FullNodes = -1 }, false},
		{"no nodes at all", func(c *Config) { c.Validators, c.FullNodes = 0, 0 }, false},
		{"negative broadcasts", func(c *Config) { c.Broadcasts = -1 }, false},
		{"negative unicasts", func(c *Config) { c.Unicasts = -1 }, false},
		{"negative down validators", func(c *Config) { c.DownValidators = -1 }, false},
		{"negative silent validators", func(c *Config) { c.SilentValidators = -1 }, false},
		{"down plus silent above validators", func(c *Config) { c.DownValidators, c.SilentValidators = 3, 2 }, false},
		{"every node down", func(c *Config) { c.FullNodes, c.DownValidators = 0, 4 }, false},
		{"nobody can send", func(c *Config) { c.FullNodes, c.SilentValidators = 0, 4 }, false},
		{"unknown mode", func(c *Config) { c.Mode = "spiral" }, false},
		{"empty mode", func(c *Config) { c.Mode = "" }, false},
		{"unknown background", func(c *Config) { c.PubSub = "meshsub" }, false},
		{"unknown log level", func(c *Config) { c.LogLevel = "loud" }, false},
		{"zero ready timeout", func(c *Config) { c.ReadyTimeout = 0 }, false},
		{"zero settle timeout", func(c *Config) { c.Settle = 0 }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.change(&c)
			err := c.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	for _, tt := range []struct {
		p, want float64
	}{{50, 3}, {99, 5}, {100, 5}, {0, 1}, {20, 1}, {21, 2}} {
		if got := percentile(xs, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", xs, tt.p, got, tt.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
}

func livePIDs(t *testing.T, n *Network) []int {
	t.Helper()
	var pids []int
	for _, nd := range n.Live() {
		if pid := nd.PID(); pid > 0 {
			pids = append(pids, pid)
		} else {
			t.Errorf("%s has no process", nd.Name)
		}
	}
	return pids
}

// assertGone fails if any of pids, or any process whose command line
// mentions dir, still exists.
func assertGone(t *testing.T, pids []int, dir string) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists (kill 0: %v)", pid, err)
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return // no procfs: the PID check above is all we can do
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(dir)) {
			t.Errorf("process %d left behind: %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
	}
}

// scrapeCounters reads the rainp2p_ samples of a node's /metrics.
func scrapeCounters(t *testing.T, base string) map[string]float64 {
	t.Helper()
	return scrapeCountersVia(t, http.DefaultClient, base)
}

// scrapeCountersVia is scrapeCounters through hc (a network's client, which
// can reach into namespaces).
func scrapeCountersVia(t *testing.T, hc *http.Client, base string) map[string]float64 {
	t.Helper()
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "rainp2p_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading /metrics: %v", err)
	}
	return out
}

func TestReportCountsMissingDuplicateAndUnexpectedDeliveries(t *testing.T) {
	v0 := &Node{Name: "validator-0", Role: RoleValidator}
	v1 := &Node{Name: "validator-1", Role: RoleValidator}
	f0 := &Node{Name: "fullnode-0", Role: RoleFullNode}
	down := &Node{Name: "validator-2", Role: RoleValidator, Down: true}
	n := &Network{nodes: []*Node{v0, v1, down, f0}, api: newClient(), progress: io.Discard}
	defer n.api.close()
	const sent = int64(1_000_000_000)
	b := &message{kind: KindBroadcast, seq: 1, from: v0, nonce: "11", sentNS: sent}
	u := &message{kind: KindUnicast, seq: 1, from: f0, to: v1, nonce: "22", sentNS: sent}
	at := func(router string, ms int64) admin.Message {
		return admin.Message{Router: router, ReceivedUnixNS: sent + ms*int64(time.Millisecond)}
	}
	got := map[*Node]history{
		v0: {"11": {at("raintree", 1)}},                                // its own broadcast came back
		v1: {"11": {at("raintree", 2), at("background", 3)}},           // delivered twice; unicast missing
		f0: {"11": {at("background", 4)}, "22": {at("background", 5)}}, // the unicast's sender got it
	}
	rep := n.report(t.Context(), []*message{b, u}, got)
	if rep.OK {
		t.Fatal("report is OK despite a missing, a duplicate and two unexpected deliveries")
	}
	if rep.Expected != 3 || rep.Delivered != 2 || rep.Missing != 1 || rep.DuplicateDeliveries != 1 || rep.Unexpected != 2 {
		t.Errorf("expected=%d delivered=%d missing=%d duplicate=%d unexpected=%d, want 3 2 1 1 2",
			rep.Expected, rep.Delivered, rep.Missing, rep.DuplicateDeliveries, rep.Unexpected)
	}
	if len(rep.MissingDetail) != 1 || rep.MissingDetail[0].Node != "validator-1" || rep.MissingDetail[0].Kind != KindUnicast {
		t.Errorf("missing detail %+v, want validator-1's unicast", rep.MissingDetail)
	}
	if rep.Latency.Max != 4 || rep.Latency.P50 != 2 {
		t.Errorf("latency %+v, want p50 2ms and max 4ms (first deliveries only)", rep.Latency)
	}
	if nr := rep.node("validator-1"); nr == nil || nr.ViaRainTree != 1 || nr.ViaBackground != 1 || nr.Received != 1 || nr.Expected != 2 {
		t.Errorf("validator-1: %+v", nr)
	}
	if nr := rep.node("validator-2"); nr == nil || nr.State != StateDown || nr.Expected != 0 {
		t.Errorf("validator-2: %+v, want down and expecting nothing", nr)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "FAILED") || !strings.Contains(table.String(), "1/2 (+1 dup)") {
		t.Errorf("table does not show the failure:\n%s", table.String())
	}
}

func TestNodeDyingMidRunFailsTheRunAndKeepsItsLogs(t *testing.T) {
	cfg := testConfig(t)
	cfg.Validators, cfg.FullNodes = 2, 2
	n, err := Start(t.Context(), cfg, &testWriter{t: t})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	pids := livePIDs(t, n)
	victim := n.Live()[len(n.Live())-1]
	if err := syscall.Kill(victim.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if exited, _ := victim.exited(); exited {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("killed node not reaped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rep, err := n.Exercise(t.Context())
	if cerr := n.Close(); cerr != nil {
		t.Errorf("Close: %v", cerr)
	}
	assertGone(t, pids, cfg.Dir)
	if err != nil {
		t.Fatalf("Exercise: %v", err)
	}
	if rep.OK || rep.Missing == 0 {
		t.Fatalf("report OK=%v missing=%d with %s dead", rep.OK, rep.Missing, victim.Name)
	}
	for _, mp := range rep.MissingDetail {
		if mp.Node != victim.Name {
			t.Errorf("%s missed %s, but only %s is dead", mp.Node, mp.Message, victim.Name)
		}
	}
	if nr := rep.node(victim.Name); nr == nil || nr.State != StateExited {
		t.Errorf("%s: %+v, want state exited", victim.Name, nr)
	}
	if _, err := os.Stat(victim.LogPath()); err != nil || rep.Dir == "" {
		t.Errorf("failed run did not keep its logs (dir %q): %v", rep.Dir, err)
	}
}

func TestPortTakenBeforeANodeBindsItRestartsTheNetwork(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	calls := 0
	pickPorts = func(count int) ([]int, error) {
		calls++
		ports, err := freePorts(count)
		if calls == 1 && err == nil {
			ports[0] = taken.Addr().(*net.TCPAddr).Port // validator-0's
		}
		return ports, err
	}
	defer func() { pickPorts = freePorts }()

	cfg := testConfig(t)
	cfg.Validators, cfg.FullNodes, cfg.Broadcasts, cfg.Unicasts = 2, 1, 2, 1
	rep, err := Run(t.Context(), cfg, &testWriter{t: t})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !rep.OK || calls != 2 {
		t.Fatalf("ok=%v after %d port picks, want ok after 2", rep.OK, calls)
	}
	assertGone(t, nil, cfg.Dir)
}
