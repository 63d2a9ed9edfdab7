package admin

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p"
)

// Message is one delivered envelope as the API shows it.
type Message struct {
	Router    string `json:"router"`
	Broadcast bool   `json:"broadcast"`
	// ID is the message ID (hex): what nodes deduplicate on.
	ID string `json:"id"`
	// From is the authenticated originator; PeerID the peer that relayed
	// this copy.
	From           string `json:"from"`
	PeerID         string `json:"peer_id"`
	Nonce          string `json:"nonce"` // decimal; uint64 does not fit a JSON number
	ReceivedAt     string `json:"received_at"`
	ReceivedUnixNS int64  `json:"received_unix_ns"`
	Payload        string `json:"payload,omitempty"`
}

// MessageOf converts a delivery for the API.
func MessageOf(d p2p.Delivery) Message {
	m := Message{
		Router:         string(d.Router),
		Broadcast:      d.Broadcast,
		ID:             d.ID.String(),
		From:           d.From.String(),
		PeerID:         d.Relay.String(),
		Nonce:          strconv.FormatUint(d.Envelope.GetNonce(), 10),
		ReceivedAt:     d.ReceivedAt.UTC().Format(time.RFC3339Nano),
		ReceivedUnixNS: d.ReceivedAt.UnixNano(),
	}
	var s wrapperspb.StringValue
	if d.Envelope.GetContent().UnmarshalTo(&s) == nil {
		m.Payload = s.GetValue()
	}
	return m
}

// Feed keeps a bounded history of deliveries and fans them out to live
// subscribers. The history is bounded both by message count and by payload
// bytes; the oldest entries are evicted first, counted in Evicted. A
// subscriber that falls behind loses messages, counted in Dropped (and per
// subscriber in Subscription.TakeDropped); the history is unaffected.
type Feed struct {
	mu         sync.Mutex
	history    []Message // live entries are history[head:]
	head       int
	bytes      int // payload bytes held in history[head:]
	limit      int
	limitBytes int
	subs       map[*Subscription]struct{}
	buffer     int
	subBytes   int

	dropped atomic.Uint64
	evicted atomic.Uint64
}

// Defaults for a Feed.
const (
	DefaultHistory = 100000
	// DefaultHistoryBytes bounds the payload bytes the history holds.
	DefaultHistoryBytes     = 64 << 20
	DefaultSubscriberBuffer = 4096
)

// NewFeed keeps up to history messages holding at most historyBytes of
// payload, and gives each subscriber a buffer of that many messages.
// A historyBytes of zero or less means DefaultHistoryBytes.
func NewFeed(history, historyBytes, buffer int) *Feed {
	if historyBytes <= 0 {
		historyBytes = DefaultHistoryBytes
	}
	return &Feed{
		limit:      max(history, 1),
		limitBytes: historyBytes,
		buffer:     max(buffer, 1),
		subBytes:   DefaultSubscriberBytes,
		subs:       map[*Subscription]struct{}{},
	}
}

// SetSubscriberBytes bounds the bytes queued for each subscriber (default
// DefaultSubscriberBytes); a delivery that would exceed it is dropped for
// that subscriber and counted. It applies to later subscriptions.
func (f *Feed) SetSubscriberBytes(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subBytes = max(n, 1)
}

// queuedSize is what a queued message is charged against a subscriber's
// byte budget: its payload and an allowance for the other fields.
func queuedSize(m Message) int64 { return int64(len(m.Payload)) + 256 }

// Publish records m and offers it to every subscriber.
func (f *Feed) Publish(m Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.history = append(f.history, m)
	f.bytes += len(m.Payload)
	for len(f.history)-f.head > f.limit || f.bytes > f.limitBytes {
		f.bytes -= len(f.history[f.head].Payload)
		f.history[f.head] = Message{} // let the payload be collected
		f.head++
		f.evicted.Add(1)
	}
	// Compact once the evicted prefix is at least as long as the live part,
	// so the backing array stays within twice the live history.
	if f.head > 0 && f.head >= len(f.history)-f.head {
		n := copy(f.history, f.history[f.head:])
		clear(f.history[n:])
		f.history, f.head = f.history[:n], 0
	}
	size := queuedSize(m)
	for s := range f.subs {
		if s.queued.Load()+size > s.budget {
			s.dropped.Add(1)
			f.dropped.Add(1)
			continue
		}
		select {
		case s.ch <- m:
			s.queued.Add(size)
		default:
			s.dropped.Add(1)
			f.dropped.Add(1)
		}
	}
}

// History returns the recorded messages, oldest first.
func (f *Feed) History() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.historyLocked()
}

func (f *Feed) historyLocked() []Message {
	return append(make([]Message, 0, len(f.history)-f.head), f.history[f.head:]...)
}

// HistoryBytes is the payload bytes the history currently holds.
func (f *Feed) HistoryBytes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bytes
}

// Subscription is one live subscriber of a Feed.
type Subscription struct {
	// C carries messages published after the subscription began.
	C <-chan Message

	ch      chan Message
	f       *Feed
	once    sync.Once
	dropped atomic.Uint64
	budget  int64
	queued  atomic.Int64 // bytes of messages on ch, charged by Publish
}

// Release returns a received message's bytes to this subscriber's budget.
// A reader of C that never calls it is limited to the budget in total.
func (s *Subscription) Release(m Message) { s.queued.Add(-queuedSize(m)) }

// TakeDropped returns how many messages this subscriber has missed since the
// previous call (because its buffer was full), and resets the count.
func (s *Subscription) TakeDropped() uint64 { return s.dropped.Swap(0) }

// Close ends the subscription. It is safe to call more than once.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.f.mu.Lock()
		delete(s.f.subs, s)
		s.f.mu.Unlock()
	})
}

// Subscribe starts a subscription to new messages.
func (f *Feed) Subscribe() *Subscription {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subscribeLocked()
}

// SubscribeWithHistory snapshots the history and starts a subscription in
// one step, so every message is either in the snapshot or on the channel,
// never both and never neither (short of a drop, which TakeDropped reports).
func (f *Feed) SubscribeWithHistory() ([]Message, *Subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.historyLocked(), f.subscribeLocked()
}

func (f *Feed) subscribeLocked() *Subscription {
	ch := make(chan Message, f.buffer)
	s := &Subscription{C: ch, ch: ch, f: f, budget: int64(f.subBytes)}
	f.subs[s] = struct{}{}
	return s
}

// Dropped counts messages slow subscribers missed, over all subscribers.
func (f *Feed) Dropped() uint64 { return f.dropped.Load() }

// Evicted counts history entries removed to stay within the count and byte
// limits.
func (f *Feed) Evicted() uint64 { return f.evicted.Load() }
