package unicast

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testProto = protocol.ID("/rainp2p/test/unicast/1")

var transports = []struct {
	name string
	addr string
}{
	{"tcp", "/ip4/127.0.0.1/tcp/0"},
	{"quic", "/ip4/127.0.0.1/udp/0/quic-v1"},
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newHost(t testing.TB, listen string, key crypto.PrivKey) host.Host {
	t.Helper()
	opts := []libp2p.Option{libp2p.ListenAddrStrings(listen)}
	if key != nil {
		opts = append(opts, libp2p.Identity(key))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// learn puts b's current addresses in a's peerstore without connecting, so
// the first Send has to dial.
func learn(a, b host.Host) {
	a.Peerstore().ClearAddrs(b.ID())
	a.Peerstore().AddAddrs(b.ID(), b.Addrs(), peerstore.PermanentAddrTTL)
}

// inbox collects delivered messages.
type inbox struct {
	mu   sync.Mutex
	msgs []message
	cond chan struct{}
}

type message struct {
	from peer.ID
	data []byte
}

func newInbox() *inbox { return &inbox{cond: make(chan struct{}, 1)} }

func (in *inbox) handle(from peer.ID, data []byte) {
	in.mu.Lock()
	in.msgs = append(in.msgs, message{from, bytes.Clone(data)}) // data is reused after we return
	in.mu.Unlock()
	select {
	case in.cond <- struct{}{}:
	default:
	}
}

func (in *inbox) wait(t testing.TB, n int) []message {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		in.mu.Lock()
		got := len(in.msgs)
		if got >= n {
			msgs := append([]message(nil), in.msgs...)
			in.mu.Unlock()
			return msgs
		}
		in.mu.Unlock()
		select {
		case <-in.cond:
		case <-deadline:
			t.Fatalf("received %d of %d messages", got, n)
		}
	}
}

func newRouter(t testing.TB, h host.Host, handler Handler, mutate ...func(*Config)) *Router {
	t.Helper()
	cfg := DefaultConfig(testProto)
	cfg.Logger = quietLogger()
	for _, m := range mutate {
		m(&cfg)
	}
	r, err := New(h, cfg, handler)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSendDeliversBothWays(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ha, hb := newHost(t, tr.addr, nil), newHost(t, tr.addr, nil)
			inA, inB := newInbox(), newInbox()
			ra, rb := newRouter(t, ha, inA.handle), newRouter(t, hb, inB.handle)
			learn(ha, hb)
			learn(hb, ha)
			ctx := ctxT(t)

			if err := ra.Send(ctx, hb.ID(), []byte("ping")); err != nil {
				t.Fatalf("a->b: %v", err)
			}
			if got := inB.wait(t, 1)[0]; got.from != ha.ID() || string(got.data) != "ping" {
				t.Fatalf("b got %q from %s", got.data, got.from)
			}
			if err := rb.Send(ctx, ha.ID(), []byte("pong")); err != nil {
				t.Fatalf("b->a: %v", err)
			}
			if got := inA.wait(t, 1)[0]; got.from != hb.ID() || string(got.data) != "pong" {
				t.Fatalf("a got %q from %s", got.data, got.from)
			}
			if s := ra.Stats(); s.FramesSent != 1 || s.BytesSent != 4 || s.StreamsOpened != 1 {
				t.Fatalf("sender stats %+v", s)
			}
			if s := rb.Stats(); s.FramesReceived != 1 || s.BytesReceived != 4 || s.StreamsAccepted != 1 {
				t.Fatalf("receiver stats %+v", s)
			}
		})
	}
}

func TestManyFramesShareOneStreamInOrder(t *testing.T) {
	const n = 5000
	ha, hb := newHost(t, transports[0].addr, nil), newHost(t, transports[0].addr, nil)
	inB := newInbox()
	ra, rb := newRouter(t, ha, func(peer.ID, []byte) {}), newRouter(t, hb, inB.handle)
	learn(ha, hb)
	ctx := ctxT(t)
	for i := range n {
		if err := ra.Send(ctx, hb.ID(), binary.AppendUvarint(nil, uint64(i))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	for i, m := range inB.wait(t, n) {
		if got, _ := binary.Uvarint(m.data); got != uint64(i) {
			t.Fatalf("message %d carries %d", i, got)
		}
	}
	if s := ra.Stats(); s.StreamsOpened != 1 || s.FramesSent != n {
		t.Fatalf("sender stats %+v, want 1 stream and %d frames", s, n)
	}
	if s := rb.Stats(); s.StreamsAccepted != 1 {
		t.Fatalf("receiver accepted %d streams", s.StreamsAccepted)
	}
	if got := countStreams(hb, ha.ID(), testProto); got != 1 {
		t.Fatalf("%d streams with %s on the connection, want 1", got, testProto)
	}
}

func countStreams(h host.Host, p peer.ID, id protocol.ID) int {
	n := 0
	for _, c := range h.Network().ConnsToPeer(p) {
		for _, s := range c.GetStreams() {
			if s.Protocol() == id {
				n++
			}
		}
	}
	return n
}

func TestSendRefusesBadSizesWithoutNetwork(t *testing.T) {
	ha := newHost(t, transports[0].addr, nil)
	ra := newRouter(t, ha, func(peer.ID, []byte) {}, func(c *Config) { c.MaxMessageSize = 100 })
	// An unknown peer: reaching the network would fail with a dial error.
	nobody := peer.ID("nobody")
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"nil data is ErrEmpty", nil, ErrEmpty},
		{"zero length data is ErrEmpty", []byte{}, ErrEmpty},
		{"data over the limit is ErrTooLarge", make([]byte, 101), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ra.Send(ctxT(t), nobody, tt.data); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if s := ra.Stats(); s.DroppedOversizeOut != 1 || s.SendErrors != 3 || s.StreamsOpened != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestOversizeInboundFrameResetsOnlyThatStream(t *testing.T) {
	ha, hb := newHost(t, transports[0].addr, nil), newHost(t, transports[0].addr, nil)
	inB := newInbox()
	ra := newRouter(t, ha, func(peer.ID, []byte) {})
	rb := newRouter(t, hb, inB.handle, func(c *Config) { c.MaxMessageSize = 1 << 10 })
	learn(ha, hb)
	ctx := ctxT(t)

	if err := ra.Send(ctx, hb.ID(), []byte("before")); err != nil {
		t.Fatal(err)
	}
	inB.wait(t, 1)
	conns := ha.Network().ConnsToPeer(hb.ID())
	if len(conns) != 1 {
		t.Fatalf("%d connections", len(conns))
	}

	// A misbehaving sender on a raw stream announces a frame far over the limit.
	raw, err := ha.NewStream(ctx, hb.ID(), testProto)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Write(binary.AppendUvarint(nil, 1<<30)); err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(raw); !errors.Is(err, network.ErrReset) {
		t.Fatalf("raw stream read: %v, want a reset", err)
	}
	if s := rb.Stats(); s.DroppedOversizeIn != 1 {
		t.Fatalf("receiver stats %+v, want one oversize drop", s)
	}

	if err := ra.Send(ctx, hb.ID(), []byte("after")); err != nil {
		t.Fatal(err)
	}
	if got := inB.wait(t, 2)[1]; string(got.data) != "after" {
		t.Fatalf("got %q", got.data)
	}
	after := ha.Network().ConnsToPeer(hb.ID())
	if len(after) != 1 || after[0].ID() != conns[0].ID() {
		t.Fatal("the connection was replaced")
	}
	if s := ra.Stats(); s.StreamsOpened != 1 || s.Reconnects != 0 {
		t.Fatalf("the router's own stream was disturbed: %+v", s)
	}
}

func TestSendReconnectsAfterPeerRestart(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			key, _, err := crypto.GenerateEd25519Key(nil)
			if err != nil {
				t.Fatal(err)
			}
			ha := newHost(t, tr.addr, nil)
			hb := newHost(t, tr.addr, key)
			ra := newRouter(t, ha, func(peer.ID, []byte) {})
			inB := newInbox()
			rb := newRouter(t, hb, inB.handle)
			learn(ha, hb)
			ctx := ctxT(t)
			if err := ra.Send(ctx, hb.ID(), []byte("one")); err != nil {
				t.Fatal(err)
			}
			inB.wait(t, 1)

			_ = rb.Close()
			_ = hb.Close()
			waitFor(t, func() bool { return ha.Network().Connectedness(hb.ID()) != network.Connected })
			// Its stream over, the peer is forgotten: the map of peers
			// holds no more than the live streams.
			waitFor(t, func() bool { return outPeers(ra) == 0 })

			hb2 := newHost(t, tr.addr, key)
			inB2 := newInbox()
			newRouter(t, hb2, inB2.handle)
			learn(ha, hb2)
			if err := ra.Send(ctx, hb2.ID(), []byte("two")); err != nil {
				t.Fatalf("send after restart: %v", err)
			}
			if got := inB2.wait(t, 1)[0]; string(got.data) != "two" {
				t.Fatalf("got %q", got.data)
			}
			if s := ra.Stats(); s.StreamsOpened != 2 || outPeers(ra) != 1 {
				t.Fatalf("stats %+v and %d peers, want 2 streams and 1 peer", s, outPeers(ra))
			}
		})
	}
}

// TestSendRetriesWhenCachedStreamBreaks covers the write-failure path: the
// stream fails on write while the Router still believes it healthy, as when
// a reset is in flight.
func TestSendRetriesWhenCachedStreamBreaks(t *testing.T) {
	ha, hb := newHost(t, transports[0].addr, nil), newHost(t, transports[0].addr, nil)
	inB := newInbox()
	ra, _ := newRouter(t, ha, func(peer.ID, []byte) {}), newRouter(t, hb, inB.handle)
	learn(ha, hb)
	ctx := ctxT(t)
	if err := ra.Send(ctx, hb.ID(), []byte("one")); err != nil {
		t.Fatal(err)
	}
	inB.wait(t, 1)
	p, _ := ra.peer(hb.ID())
	p.sem <- struct{}{}
	p.cur.w.Reset(brokenWriter{})
	<-p.sem
	if err := ra.Send(ctx, hb.ID(), []byte("two")); err != nil {
		t.Fatal(err)
	}
	if got := inB.wait(t, 2)[1]; string(got.data) != "two" {
		t.Fatalf("got %q", got.data)
	}
	if s := ra.Stats(); s.Reconnects != 1 || s.StreamsOpened != 2 || s.SendErrors != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestIdleInboundStreamIsResetAndSenderReopens(t *testing.T) {
	ha, hb := newHost(t, transports[0].addr, nil), newHost(t, transports[0].addr, nil)
	inB := newInbox()
	ra := newRouter(t, ha, func(peer.ID, []byte) {})
	newRouter(t, hb, inB.handle, func(c *Config) { c.IdleTimeout = 100 * time.Millisecond })
	learn(ha, hb)
	ctx := ctxT(t)
	if err := ra.Send(ctx, hb.ID(), []byte("one")); err != nil {
		t.Fatal(err)
	}
	inB.wait(t, 1)
	waitFor(t, func() bool { return countStreams(hb, ha.ID(), testProto) == 0 })
	if err := ra.Send(ctx, hb.ID(), []byte("two")); err != nil {
		t.Fatal(err)
	}
	inB.wait(t, 2)
	if s := ra.Stats(); s.StreamsOpened != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestConcurrentSendsAllArriveInPerSenderOrder(t *testing.T) {
	const senders, each = 32, 100
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ha, hb := newHost(t, tr.addr, nil), newHost(t, tr.addr, nil)
			inB := newInbox()
			ra := newRouter(t, ha, func(peer.ID, []byte) {})
			newRouter(t, hb, inB.handle)
			learn(ha, hb)
			ctx := ctxT(t)
			var wg sync.WaitGroup
			errs := make(chan error, senders)
			for g := range senders {
				wg.Go(func() {
					for i := range each {
						if err := ra.Send(ctx, hb.ID(), fmt.Appendf(nil, "%d/%d", g, i)); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			next := make([]int, senders)
			for _, m := range inB.wait(t, senders*each) {
				var g, i int
				if _, err := fmt.Sscanf(string(m.data), "%d/%d", &g, &i); err != nil {
					t.Fatal(err)
				}
				if i != next[g] {
					t.Fatalf("sender %d: got %d, want %d", g, i, next[g])
				}
				next[g]++
			}
			if s := ra.Stats(); s.StreamsOpened != 1 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestSendHonoursCancelledContext(t *testing.T) {
	ha := newHost(t, transports[0].addr, nil)
	ra := newRouter(t, ha, func(peer.ID, []byte) {})

	// A TCP listener that accepts and never answers stalls the libp2p handshake.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	var connsMu sync.Mutex
	var conns []net.Conn
	held.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, c)
			connsMu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		held.Wait()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	_, pub, _ := crypto.GenerateEd25519Key(nil)
	silent, _ := peer.IDFromPublicKey(pub)
	port := ln.Addr().(*net.TCPAddr).Port
	addr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
	ma, err := peer.AddrInfoFromString(addr + "/p2p/" + silent.String())
	if err != nil {
		t.Fatal(err)
	}
	ha.Peerstore().AddAddrs(silent, ma.Addrs, peerstore.PermanentAddrTTL)

	tests := []struct {
		name   string
		cancel func(context.CancelFunc)
	}{
		{"already cancelled", func(c context.CancelFunc) { c() }},
		{"cancelled while dialing", func(c context.CancelFunc) { time.AfterFunc(100*time.Millisecond, c) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tt.cancel(cancel)
			start := time.Now()
			err := ra.Send(ctx, silent, []byte("x"))
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("Send took %v after cancel", d)
			}
		})
	}
}

func TestCloseIsIdempotentAndStopsSends(t *testing.T) {
	ha, hb := newHost(t, transports[0].addr, nil), newHost(t, transports[0].addr, nil)
	inB := newInbox()
	ra := newRouter(t, ha, func(peer.ID, []byte) {})
	rb := newRouter(t, hb, inB.handle)
	learn(ha, hb)
	ctx := ctxT(t)
	if err := ra.Send(ctx, hb.ID(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	inB.wait(t, 1)
	for range 2 {
		if err := rb.Close(); err != nil {
			t.Fatal(err)
		}
		if err := ra.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := ra.Send(ctx, hb.ID(), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
	for _, p := range hb.Mux().Protocols() {
		if p == testProto {
			t.Fatal("stream handler still registered")
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"defaults are valid", func(*Config) {}, true},
		{"empty protocol is invalid", func(c *Config) { c.ProtocolID = "" }, false},
		{"zero max size is invalid", func(c *Config) { c.MaxMessageSize = 0 }, false},
		{"zero write timeout is invalid", func(c *Config) { c.WriteTimeout = 0 }, false},
		{"zero idle timeout is invalid", func(c *Config) { c.IdleTimeout = 0 }, false},
		{"zero dial timeout is invalid", func(c *Config) { c.DialTimeout = 0 }, false},
		{"no strike records is invalid", func(c *Config) { c.MaxStrikeRecords = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig(testProto)
			tt.mutate(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, network.ErrReset }

// A Send that runs out of time must not take earlier, already accepted
// frames down with it: the stream is closed for writing, not reset.
func TestTimedOutSendKeepsEarlierFrames(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ha, hb := newHost(t, tr.addr, nil), newHost(t, tr.addr, nil)
			learn(ha, hb)
			release := make(chan struct{})
			var mu sync.Mutex
			var got []byte
			newRouter(t, hb, func(_ peer.ID, data []byte) {
				<-release // a slow application: the stream's window fills up
				mu.Lock()
				got = append(got, data[0])
				mu.Unlock()
			})
			var releaseOnce sync.Once
			unblock := func() { releaseOnce.Do(func() { close(release) }) }
			t.Cleanup(unblock) // runs before the routers close, even on failure
			ra := newRouter(t, ha, func(peer.ID, []byte) {})

			frame := make([]byte, 64<<10)
			var sent []byte
			for i := range 200 {
				frame[0] = byte(i)
				ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
				dl, _ := ctx.Deadline()
				err := ra.Send(ctx, hb.ID(), frame)
				// The stream's write deadline can fire a moment before the
				// context's own timer marks it done.
				expired := !time.Now().Before(dl)
				cancel()
				if err != nil {
					if !expired {
						t.Fatalf("frame %d failed before its deadline: %v", i, err)
					}
					break
				}
				sent = append(sent, byte(i))
			}
			if len(sent) == 200 {
				t.Fatal("no Send ever blocked; the test did not fill the window")
			}
			unblock()
			deadline := time.Now().Add(10 * time.Second)
			for {
				mu.Lock()
				n := len(got)
				mu.Unlock()
				if n >= len(sent) || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			if !bytes.Equal(got[:min(len(got), len(sent))], sent) || len(got) < len(sent) {
				t.Fatalf("%d frames reported sent, %d delivered", len(sent), len(got))
			}
		})
	}
}

// A Send that gave up waiting for its turn must not make the router
// forget a peer whose stream is live: the next Send would open a second
// stream, and frames on two streams may arrive out of order.
func TestAnAbandonedWaitKeepsALiveStream(t *testing.T) {
	ha, hb := newHost(t, transports[0].addr, nil), newHost(t, transports[0].addr, nil)
	inB := newInbox()
	ra := newRouter(t, ha, func(peer.ID, []byte) {})
	newRouter(t, hb, inB.handle)
	learn(ha, hb)
	ctx := ctxT(t)
	if err := ra.Send(ctx, hb.ID(), []byte("one")); err != nil {
		t.Fatal(err)
	}
	inB.wait(t, 1)
	p, err := ra.peer(hb.ID()) // a Send that then gives up waiting
	if err != nil {
		t.Fatal(err)
	}
	ra.release(hb.ID(), p, false)
	if n := outPeers(ra); n != 1 {
		t.Fatalf("%d peers after an abandoned wait, want the live one kept", n)
	}
	if err := ra.Send(ctx, hb.ID(), []byte("two")); err != nil {
		t.Fatal(err)
	}
	inB.wait(t, 2)
	if s := ra.Stats(); s.StreamsOpened != 1 {
		t.Fatalf("%d streams opened, want the first one reused", s.StreamsOpened)
	}
}

// outPeers is how many peers r keeps send state for.
func outPeers(r *Router) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.peers)
}
