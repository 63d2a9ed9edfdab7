package localnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// signalHelperEnv makes the test binary run signalHelper instead of the
// tests.
const signalHelperEnv = "RAINP2P_LOCALNET_SIGNAL_HELPER"

// signalHelper waits for a shutdown signal, then pretends to stop nodes
// for a long time: only a second signal can end it early.
func signalHelper() int {
	ctx, stop := SignalContext(context.Background())
	defer stop()
	fmt.Println("ready")
	<-ctx.Done()
	fmt.Println("stopping")
	time.Sleep(30 * time.Second)
	return 0
}

func TestSecondSignalKillsDuringShutdown(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), signalHelperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := bufio.NewScanner(out)
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			_ = cmd.Process.Kill()
			t.Fatalf("helper said %q (%v), want %q", lines.Text(), lines.Err(), want)
		}
	}
	expect("ready")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil { // the first signal: orderly shutdown
		t.Fatal(err)
	}
	expect("stopping")
	go func() { exited <- cmd.Wait() }()
	// The second signal must kill it. The handler is released just after
	// the context ends, so repeat until it takes.
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT {
				t.Fatalf("helper ended with %v, want killed by SIGINT", err)
			}
			return
		case <-tick.C:
		case <-deadline:
			_ = cmd.Process.Kill()
			<-exited
			t.Fatal("a second Ctrl-C did not kill the process during shutdown")
		}
	}
}

// A node whose delivery history cannot be read fails the run, and the
// report says why.
func TestCollectReportsPollErrors(t *testing.T) {
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/messages" {
			fmt.Fprint(w, "[]")
			return
		}
		http.NotFound(w, r)
	}))
	defer good.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "history unavailable", http.StatusInternalServerError)
	}))
	defer bad.Close()

	v0 := &Node{Name: "validator-0", Role: RoleValidator, adminURL: good.URL}
	v1 := &Node{Name: "validator-1", Role: RoleValidator, adminURL: bad.URL}
	n := &Network{nodes: []*Node{v0, v1}, api: newClient(), progress: &strings.Builder{}}
	n.cfg.Settle, n.cfg.Grace = 300*time.Millisecond, 0
	defer n.api.close()
	msgs := []*message{{kind: KindBroadcast, seq: 1, from: v0, nonce: "11", sentNS: 1}}

	got, pollErrs, err := n.collect(t.Context(), msgs, n.Live())
	if err != nil {
		t.Fatal(err)
	}
	if pollErrs[v0] != nil || pollErrs[v1] == nil || !strings.Contains(pollErrs[v1].Error(), "history unavailable") {
		t.Fatalf("poll errors %v, want one for validator-1 only", pollErrs)
	}
	rep := n.report(t.Context(), msgs, got)
	addPollErrors(rep, n.Live(), pollErrs)
	if rep.OK || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], "validator-1") || !strings.Contains(rep.Errors[0], "history unavailable") {
		t.Errorf("report OK=%v errors %q, want a failure naming validator-1's poll error", rep.OK, rep.Errors)
	}
}

// When a node cannot be stopped cleanly, Close keeps the directory and
// says where it is.
func TestCloseKeepsTheDirectoryWhenANodeWouldNotStop(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "validator-0")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(dir, "trapped")
	script := filepath.Join(dir, "stubborn.sh")
	body := fmt.Sprintf("#!/bin/sh\ntrap '' TERM\ntouch %q\nwhile :; do sleep 1; done\n", ready)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	nd := &Node{Name: "validator-0", Role: RoleValidator, Dir: home}
	var progress strings.Builder
	n := &Network{dir: dir, nodes: []*Node{nd}, api: newClient(), progress: &progress}
	n.cfg.StopTimeout = 200 * time.Millisecond
	if err := nd.start(script); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = n.Close()
			t.Fatal("stub node never set its trap")
		}
	}
	err := n.Close()
	if err == nil || !strings.Contains(err.Error(), "ignored SIGTERM") {
		t.Errorf("Close = %v, want the node that ignored SIGTERM", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("directory removed although a node did not stop cleanly: %v", err)
	}
	if !strings.Contains(progress.String(), "keeping "+dir) {
		t.Errorf("progress %q does not say the directory %s is kept", progress.String(), dir)
	}
}
