package raintree

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// fakeClock advances only when told to and runs due callbacks on the
// goroutine that advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool
	fired   bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves time forward by d and runs the callbacks that fell due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool {
		if t.stopped {
			return true
		}
		if !t.at.After(c.now) {
			t.fired = true
			due = append(due, t)
			return true
		}
		return false
	})
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// Pending is the number of timers neither fired nor stopped.
func (c *fakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped && !t.fired {
			n++
		}
	}
	return n
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.stopped || t.fired {
		return false
	}
	t.stopped = true
	return true
}

func TestAckTracker(t *testing.T) {
	const timeout = 2 * time.Second
	key := func(p string, msg byte, start int) ackKey {
		return ackKey{peer: peer.ID(p), msgID: wire.MessageID{msg}, level: 2, span: Span{Start: start, Len: 3}}
	}
	a, b, c := key("a", 1, 3), key("b", 1, 6), key("c", 2, 3)

	// Each step runs after advancing the fake clock by advance.
	type step struct {
		advance     time.Duration
		add         *ackKey // value is the key's peer plus the step number
		ack         *ackKey
		wantAck     string // value settled by ack; "" means not found
		wantExpired []string
		wantLen     int
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"an acknowledged frame never expires", []step{
			{add: &a, wantLen: 1},
			{advance: time.Second, ack: &a, wantAck: "a0", wantLen: 0},
			{advance: time.Hour, wantLen: 0},
		}},
		{"an unacknowledged frame expires at its deadline and not before", []step{
			{add: &a, wantLen: 1},
			{advance: timeout - time.Nanosecond, wantLen: 1},
			{advance: time.Nanosecond, wantExpired: []string{"a0"}, wantLen: 0},
			{advance: time.Hour, wantLen: 0},
		}},
		{"frames expire earliest deadline first", []step{
			{add: &b, wantLen: 1},
			{advance: 500 * time.Millisecond, add: &a, wantLen: 2},
			{advance: 500 * time.Millisecond, add: &c, wantLen: 3},
			{advance: 10 * time.Second, wantExpired: []string{"b0", "a1", "c2"}, wantLen: 0},
		}},
		{"an ACK nobody waits for is reported", []step{
			{add: &a, wantLen: 1},
			{ack: &b, wantAck: "", wantLen: 1},
			{ack: &c, wantAck: "", wantLen: 1},
		}},
		{"a late ACK after expiry is reported", []step{
			{add: &a, wantLen: 1},
			{advance: timeout, wantExpired: []string{"a0"}},
			{ack: &a, wantAck: ""},
		}},
		{"frames under one key are settled oldest first", []step{
			{add: &a, wantLen: 1},
			{advance: time.Second, add: &a, wantLen: 2},
			{ack: &a, wantAck: "a0", wantLen: 1},
			{advance: time.Second, wantLen: 1},
			{advance: time.Second, wantExpired: []string{"a1"}, wantLen: 0},
		}},
		{"ACKs only settle their own peer, message and span", []step{
			{add: &a, wantLen: 1},
			{add: &b, wantLen: 2},
			{ack: &b, wantAck: "b1", wantLen: 1},
			{advance: timeout, wantExpired: []string{"a0"}, wantLen: 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			tr := newAckTracker[string]()
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				if s.add != nil {
					tr.Add(*s.add, clock.Now().Add(timeout), string(s.add.peer)+string(rune('0'+i)))
				}
				if s.ack != nil {
					got, ok := tr.Ack(*s.ack)
					if ok != (s.wantAck != "") || got != s.wantAck {
						t.Fatalf("step %d: Ack = %q, %v; want %q", i, got, ok, s.wantAck)
					}
				}
				if got := tr.Expire(clock.Now()); !slices.Equal(got, s.wantExpired) {
					t.Fatalf("step %d: Expire = %q, want %q", i, got, s.wantExpired)
				}
				if tr.Len() != s.wantLen {
					t.Fatalf("step %d: Len = %d, want %d", i, tr.Len(), s.wantLen)
				}
			}
		})
	}
}

func TestAckTrackerRemoveAndNext(t *testing.T) {
	clock := newFakeClock()
	tr := newAckTracker[int]()
	if _, ok := tr.Next(); ok {
		t.Fatal("Next on an empty tracker reported a deadline")
	}
	k := ackKey{peer: "p", msgID: wire.MessageID{7}, level: 1}
	first := tr.Add(k, clock.Now().Add(time.Second), 1)
	tr.Add(k, clock.Now().Add(3*time.Second), 2)
	if v, ok := tr.Remove(first); !ok || v != 1 {
		t.Fatalf("Remove = %d, %v; want 1, true", v, ok)
	}
	if _, ok := tr.Remove(first); ok {
		t.Fatal("removing twice succeeded")
	}
	if at, ok := tr.Next(); !ok || !at.Equal(clock.Now().Add(3*time.Second)) {
		t.Fatalf("Next = %v, %v; want the second frame's deadline", at, ok)
	}
	if v, ok := tr.Ack(k); !ok || v != 2 {
		t.Fatalf("Ack after Remove = %d, %v; want the second frame", v, ok)
	}
	clock.Advance(time.Hour)
	if got := tr.Expire(clock.Now()); len(got) != 0 {
		t.Fatalf("Expire = %v after everything was settled", got)
	}
	if _, ok := tr.Next(); ok || tr.due.Len() != 0 {
		t.Fatalf("Next found a deadline or left %d stale heap entries", tr.due.Len())
	}
}

func TestAckTrackerExtendMovesTheDeadline(t *testing.T) {
	clock := newFakeClock()
	tr := newAckTracker[string]()
	k := ackKey{peer: "p", msgID: wire.MessageID{1}, level: 1}
	id := tr.Add(k, clock.Now().Add(time.Hour), "sending")
	clock.Advance(time.Minute)
	if !tr.Extend(id, clock.Now().Add(time.Second)) {
		t.Fatal("Extend lost a waiting frame")
	}
	if at, _ := tr.Next(); !at.Equal(clock.Now().Add(time.Second)) {
		t.Fatalf("Next = %v, want the extended deadline", at)
	}
	clock.Advance(time.Second)
	if got := tr.Expire(clock.Now()); !slices.Equal(got, []string{"sending"}) {
		t.Fatalf("Expire = %q at the extended deadline", got)
	}
	clock.Advance(time.Hour)
	if got := tr.Expire(clock.Now()); len(got) != 0 {
		t.Fatalf("the original deadline expired the frame again: %q", got)
	}
	if tr.Extend(id, clock.Now()) {
		t.Fatal("Extend revived an expired frame")
	}
}

func TestFakeClockStopPreventsCallback(t *testing.T) {
	clock := newFakeClock()
	fired := 0
	clock.AfterFunc(time.Second, func() { fired++ })
	stopped := clock.AfterFunc(time.Second, func() { fired += 10 })
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop should succeed once")
	}
	clock.Advance(time.Second)
	if fired != 1 || clock.Pending() != 0 {
		t.Fatalf("fired = %d, pending = %d; want 1, 0", fired, clock.Pending())
	}
}
