package admin_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rainp2p/rainp2p/internal/admin"
)

func msg(i int, payload string) admin.Message {
	return admin.Message{Nonce: strconv.Itoa(i), Payload: payload}
}

func nonces(ms []admin.Message) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Nonce)
	}
	return strings.Join(s, ",")
}

func TestHistoryIsBoundedByCountAndPayloadBytes(t *testing.T) {
	tests := []struct {
		name         string
		count, bytes int
		payloads     []int // payload sizes published, nonces 1..n
		wantHistory  string
		wantBytes    int
		wantEvicted  uint64
	}{
		{"under both limits nothing is evicted", 5, 100, []int{10, 10, 10}, "1,2,3", 30, 0},
		{"over the count the oldest go", 2, 100, []int{1, 1, 1, 1}, "3,4", 2, 2},
		{"over the bytes the oldest go", 10, 25, []int{10, 10, 10}, "2,3", 20, 1},
		{"a large message evicts several", 10, 24, []int{5, 5, 5, 20}, "4", 20, 3},
		{"exactly the byte budget is kept", 10, 20, []int{10, 10}, "1,2", 20, 0},
		{"a message over the whole budget is not kept", 10, 5, []int{1, 6}, "", 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := admin.NewFeed(tt.count, tt.bytes, 1)
			for i, n := range tt.payloads {
				f.Publish(msg(i+1, strings.Repeat("p", n)))
			}
			if got := nonces(f.History()); got != tt.wantHistory {
				t.Errorf("history %q, want %q", got, tt.wantHistory)
			}
			if got := f.HistoryBytes(); got != tt.wantBytes {
				t.Errorf("history bytes %d, want %d", got, tt.wantBytes)
			}
			if got := f.Evicted(); got != tt.wantEvicted {
				t.Errorf("evicted %d, want %d", got, tt.wantEvicted)
			}
		})
	}
}

func TestHistoryStaysOrderedThroughManyEvictions(t *testing.T) {
	f := admin.NewFeed(3, 1<<20, 1)
	for i := 1; i <= 1000; i++ {
		f.Publish(msg(i, "x"))
		want := []string{}
		for j := max(1, i-2); j <= i; j++ {
			want = append(want, strconv.Itoa(j))
		}
		if got := nonces(f.History()); got != strings.Join(want, ",") {
			t.Fatalf("after %d: history %q", i, got)
		}
	}
}

func TestSubscribeWithHistorySeesEveryMessageExactlyOnce(t *testing.T) {
	const n = 2000
	for round := range 20 {
		f := admin.NewFeed(n, 0, n)
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 1; i <= n; i++ {
				f.Publish(msg(i, ""))
			}
		})
		time.Sleep(time.Duration(round*10) * time.Microsecond)
		hist, sub := f.SubscribeWithHistory()
		wg.Wait()
		sub.Close()
		seen := append([]admin.Message{}, hist...)
		for len(sub.C) > 0 {
			seen = append(seen, <-sub.C)
		}
		if len(seen) != n {
			t.Fatalf("round %d: saw %d messages, want %d", round, len(seen), n)
		}
		for i, m := range seen {
			if m.Nonce != strconv.Itoa(i+1) {
				t.Fatalf("round %d: message %d is %s (duplicate or gap at the history/live seam, history had %d)", round, i, m.Nonce, len(hist))
			}
		}
	}
}

func TestEachSubscriberCountsItsOwnDrops(t *testing.T) {
	f := admin.NewFeed(10, 0, 2)
	slow, fast := f.Subscribe(), f.Subscribe()
	defer slow.Close()
	defer fast.Close()
	for i := 1; i <= 6; i++ {
		f.Publish(msg(i, ""))
		if i <= 3 {
			<-fast.C
		}
	}
	tests := []struct {
		name string
		sub  *admin.Subscription
		want uint64
	}{
		{"the slow subscriber missed all but its buffer", slow, 4},
		{"the fast subscriber missed only what came after it stopped reading", fast, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sub.TakeDropped(); got != tt.want {
				t.Fatalf("dropped %d, want %d", got, tt.want)
			}
			if got := tt.sub.TakeDropped(); got != 0 {
				t.Fatalf("dropped again %d after taking", got)
			}
		})
	}
	if f.Dropped() != 5 {
		t.Fatalf("feed dropped %d, want 5", f.Dropped())
	}
}

// blockingWriter is a streaming ResponseWriter whose first Write blocks until
// released, so a test can publish while the handler is mid-replay.
type blockingWriter struct {
	header  http.Header
	mu      sync.Mutex
	buf     strings.Builder
	first   sync.Once
	writing chan struct{}
	release chan struct{}
}

func (w *blockingWriter) Header() http.Header { return w.header }
func (w *blockingWriter) WriteHeader(int)     {}
func (w *blockingWriter) Flush()              {}
func (w *blockingWriter) Write(b []byte) (int, error) {
	w.first.Do(func() {
		close(w.writing)
		<-w.release
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}

func (w *blockingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestTheStreamNamesEachEventAndReportsItsDrops(t *testing.T) {
	feed := admin.NewFeed(10, 0, 1)
	feed.Publish(msg(1, "old"))
	srv := admin.NewServer(fakeNode{}, feed, prometheus.NewRegistry(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/messages?history=1", nil)
	req.Host = "127.0.0.1:1"
	w := &blockingWriter{header: http.Header{}, writing: make(chan struct{}), release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Handler().ServeHTTP(w, req)
	}()
	<-w.writing // replaying message 1; the subscription is live
	for i := 2; i <= 4; i++ {
		feed.Publish(msg(i, "new")) // 2 is buffered, 3 and 4 are dropped
	}
	close(w.release)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(w.String(), "id: 2\n") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done

	var events []string
	sc := bufio.NewScanner(strings.NewReader(w.String()))
	var cur []string
	for sc.Scan() {
		if sc.Text() == "" {
			events = append(events, strings.Join(cur, "|"))
			cur = nil
			continue
		}
		if !strings.HasPrefix(sc.Text(), "data: {\"router\"") {
			cur = append(cur, sc.Text())
		} else {
			cur = append(cur, "data: <message>")
		}
	}
	want := []string{
		"id: 1|event: message|data: <message>",
		`event: dropped|data: {"dropped":2}`,
		"id: 2|event: message|data: <message>",
	}
	if strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
}
