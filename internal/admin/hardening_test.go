package admin_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rainp2p/rainp2p/internal/admin"
)

func tokenHandler(token string) (*admin.Server, http.Handler) {
	cfg := admin.DefaultConfig()
	cfg.Token = token
	srv := admin.NewServer(fakeNode{}, admin.NewFeed(10, 0, 4), prometheus.NewRegistry(), nil, admin.WithConfig(cfg))
	// A route added after construction, as later features do.
	srv.Handle(http.MethodPut, "/v1/later", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	srv.Handle(http.MethodGet, "/v1/later", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	return srv, srv.Handler()
}

func TestStateChangingRequestsNeedTheBearerToken(t *testing.T) {
	const token = "s3cret-token"
	tests := []struct {
		name, method, path, auth string
		want                     int
	}{
		{"a read needs no token", http.MethodGet, "/v1/status", "", http.StatusOK},
		{"a broadcast without a token is refused", http.MethodPost, "/v1/broadcast", "", http.StatusUnauthorized},
		{"a broadcast with a wrong token is refused", http.MethodPost, "/v1/broadcast", "Bearer nope", http.StatusUnauthorized},
		{"a token without the Bearer scheme is refused", http.MethodPost, "/v1/send", token, http.StatusUnauthorized},
		{"a broadcast with the token is served", http.MethodPost, "/v1/broadcast", "Bearer " + token, http.StatusOK},
		{"a route added later is protected by method", http.MethodPut, "/v1/later", "", http.StatusUnauthorized},
		{"a route added later serves the token holder", http.MethodPut, "/v1/later", "Bearer " + token, http.StatusNoContent},
		{"a read on a later route needs no token", http.MethodGet, "/v1/later", "", http.StatusNoContent},
	}
	srv, h := tokenHandler(token)
	refused := uint64(0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := ""
			if tt.method != http.MethodGet {
				body = `{"payload":"x"}`
			}
			if tt.path == "/v1/send" {
				body = `{"to":"` + strings.Repeat("ab", 20) + `","payload":"x"}`
			}
			req, _ := http.NewRequest(tt.method, "http://127.0.0.1:1"+tt.path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := &recorder{header: http.Header{}}
			h.ServeHTTP(rec, req)
			if rec.code != tt.want {
				t.Fatalf("got %d (%s), want %d", rec.code, rec.body.String(), tt.want)
			}
			if tt.want == http.StatusUnauthorized {
				refused++
			}
		})
	}
	if got := srv.Stats().Unauthorized; got != refused {
		t.Fatalf("unauthorized counter %d, want %d", got, refused)
	}
}

func TestWithoutATokenFileNoTokenIsAsked(t *testing.T) {
	_, h := tokenHandler("")
	rec := apiRequest{method: http.MethodPost, path: "/v1/broadcast"}.do(h)
	checkAnswer(t, rec, http.StatusOK)
}

func TestReadTokenRefusesUnsafeFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, path, want string
		fails            bool
	}{
		{"a missing file means no token", filepath.Join(dir, "absent"), "", false},
		{"a private file gives its token, trimmed", write("ok", "abc123\n", 0o600), "abc123", false},
		{"a file others can read is refused", write("open", "abc123\n", 0o644), "", true},
		{"an empty file is refused", write("empty", "\n", 0o600), "", true},
		{"two tokens are refused", write("two", "a b\n", 0o600), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := admin.ReadToken(tt.path)
			if (err != nil) != tt.fails || got != tt.want {
				t.Fatalf("ReadToken = %q, %v; want %q, fails=%v", got, err, tt.want, tt.fails)
			}
		})
	}
}

func TestASubscriberIsBoundedByBytesAsWellAsCount(t *testing.T) {
	f := admin.NewFeed(10, 0, 1000)
	f.SetSubscriberBytes(10 << 10)
	sub := f.Subscribe()
	defer sub.Close()
	big := strings.Repeat("x", 3<<10)
	for i := range 10 {
		f.Publish(msg(i+1, big))
	}
	// Each message is charged 3 KiB + 256 bytes: three fit in 10 KiB.
	if got := len(sub.C); got != 3 {
		t.Fatalf("queued %d messages, want 3", got)
	}
	if got := sub.TakeDropped(); got != 7 {
		t.Fatalf("dropped %d, want 7", got)
	}
	for range 3 {
		sub.Release(<-sub.C)
	}
	f.Publish(msg(11, big))
	if got := len(sub.C); got != 1 {
		t.Fatalf("after the reader caught up, queued %d, want 1", got)
	}
}

// serve runs a Server with cfg on a loopback listener until the test ends.
func serve(t *testing.T, cfg admin.Config, feed *admin.Feed) (*admin.Server, string) {
	t.Helper()
	ln, err := admin.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := admin.NewServer(fakeNode{}, feed, prometheus.NewRegistry(), nil, admin.WithConfig(cfg))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, ln.Addr().String()
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestASlowRequestBodyIsCutOffByTheReadTimeout(t *testing.T) {
	cfg := admin.DefaultConfig()
	cfg.ReadTimeout = 300 * time.Millisecond
	_, addr := serve(t, cfg, admin.NewFeed(10, 0, 4))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	start := time.Now()
	// Trickle one byte at a time; the server must give up well before the
	// body is complete.
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_, _ = io.Copy(io.Discard, c)
	}()
	for i := 0; i < 200; i++ {
		select {
		case <-closed:
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("connection held %v", d)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := c.Write([]byte(" ")); err != nil {
			return // the server closed the connection
		}
	}
	t.Fatal("the server kept reading a trickled body for 10 s")
}

func TestConnectionsBeyondTheCapWaitUntilOneCloses(t *testing.T) {
	cfg := admin.DefaultConfig()
	cfg.MaxConns = 2
	srv, addr := serve(t, cfg, admin.NewFeed(10, 0, 4))
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	third, err := net.Dial("tcp", addr) // the kernel accepts; the server does not serve it yet
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	fmt.Fprintf(third, "GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	waitFor(t, "the listener to reach its cap", func() bool { return srv.Stats().ConnsCapped > 0 })
	_ = third.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := third.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection beyond the cap was served")
	}
	held[0].Close()
	_ = third.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(third), nil)
	if err != nil {
		t.Fatalf("after a slot freed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestASubscriberThatStopsReadingIsCutOff(t *testing.T) {
	cfg := admin.DefaultConfig()
	cfg.StreamWriteTimeout = 200 * time.Millisecond
	feed := admin.NewFeed(10, 1<<20, 1<<16)
	feed.SetSubscriberBytes(64 << 20)
	srv, addr := serve(t, cfg, feed)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10)
	}
	fmt.Fprintf(c, "GET /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	br := bufio.NewReader(c)
	// Only the header is read: closing the body would drain the stream.
	if _, err := http.ReadResponse(br, nil); err != nil { //nolint:bodyclose // see above
		t.Fatal(err)
	}
	// The client reads nothing more; the socket buffers fill and the
	// server's next write hits its deadline.
	big := strings.Repeat("y", 64<<10)
	for i := 0; srv.Stats().StreamsCut == 0; i++ {
		if i == 4000 {
			t.Fatal("a stalled subscriber was never cut off")
		}
		feed.Publish(msg(i+1, big))
		if i%50 == 49 {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// recorder is a minimal ResponseWriter.
type recorder struct {
	header http.Header
	code   int
	body   strings.Builder
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(c int)   { r.code = c }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}
