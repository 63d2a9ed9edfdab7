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
	Router         string `json:"router"`
	Broadcast      bool   `json:"broadcast"`
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
		From:           d.From.String(),
		PeerID:         d.PeerID.String(),
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
// subscribers. A subscriber that falls behind loses messages, counted in
// Dropped; the history is unaffected.
type Feed struct {
	mu      sync.Mutex
	history []Message
	start   int // ring start once history is full
	limit   int
	subs    map[chan Message]struct{}
	buffer  int

	dropped atomic.Uint64
	evicted atomic.Uint64
}

// Defaults for a Feed.
const (
	DefaultHistory          = 100000
	DefaultSubscriberBuffer = 4096
)

// NewFeed keeps up to history messages and gives each subscriber a buffer.
func NewFeed(history, buffer int) *Feed {
	return &Feed{limit: max(history, 1), buffer: max(buffer, 1), subs: map[chan Message]struct{}{}}
}

// Publish records m and offers it to every subscriber.
func (f *Feed) Publish(m Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.history) < f.limit {
		f.history = append(f.history, m)
	} else {
		f.history[f.start] = m
		f.start = (f.start + 1) % f.limit
		f.evicted.Add(1)
	}
	for ch := range f.subs {
		select {
		case ch <- m:
		default:
			f.dropped.Add(1)
		}
	}
}

// History returns the recorded messages, oldest first.
func (f *Feed) History() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Message, 0, len(f.history))
	out = append(out, f.history[f.start:]...)
	return append(out, f.history[:f.start]...)
}

// Subscribe returns a channel of new messages and a function that ends the
// subscription.
func (f *Feed) Subscribe() (<-chan Message, func()) {
	ch := make(chan Message, f.buffer)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, ch)
			f.mu.Unlock()
		})
	}
}

// Dropped counts messages a slow subscriber missed; Evicted counts history
// entries overwritten to stay within the limit.
func (f *Feed) Dropped() uint64 { return f.dropped.Load() }

// Evicted counts history entries overwritten to stay within the limit.
func (f *Feed) Evicted() uint64 { return f.evicted.Load() }
