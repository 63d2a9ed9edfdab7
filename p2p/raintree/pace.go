package raintree

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A paced frame's send is bounded by this node's own pace
// (Config.SlowSendFactor): the uplink sends one paced frame at a time, so
// a head that reads a block slowly would otherwise hold every frame behind
// its own for up to SendTimeout. The pace is the median time per byte,
// from a frame's send to its ACK, of the last paceSamples paced frames of
// at least paceMinBytes, so a few slow heads cannot move it; until there
// is one, SendTimeout serves. From the send to the ACK, because a write
// ends once buffers (the stream's window, the kernel's socket buffer, up
// to megabytes) have taken the frame, and an honest head's write is
// therefore quicker than its delivery; the bound applies to the write.

const (
	// paceSamples is how many recent paced sends the pace is the median of.
	paceSamples = 16
	// paceMinBytes is the smallest frame whose send is a sample.
	paceMinBytes = 256 << 10
)

// sendPace holds the time per byte of recent paced sends.
type sendPace struct {
	mu      sync.Mutex
	perByte []float64 // seconds a byte, a ring of paceSamples
	next    int
}

// add records a paced send of size bytes that took elapsed.
func (p *sendPace) add(size int, elapsed time.Duration) {
	if size < paceMinBytes {
		return
	}
	v := elapsed.Seconds() / float64(size)
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.perByte) < paceSamples {
		p.perByte = append(p.perByte, v)
		return
	}
	p.perByte[p.next] = v
	p.next = (p.next + 1) % paceSamples
}

// timeout is how long a paced frame of size bytes may take: SlowSendFactor
// times the median pace, at least SlowSendMin, at most SendTimeout.
func (p *sendPace) timeout(size int, cfg Config) time.Duration {
	if cfg.SlowSendFactor == 0 {
		return cfg.SendTimeout
	}
	p.mu.Lock()
	samples := slices.Clone(p.perByte)
	p.mu.Unlock()
	if len(samples) == 0 {
		return cfg.SendTimeout
	}
	slices.Sort(samples)
	median := samples[len(samples)/2]
	d := time.Duration(cfg.SlowSendFactor * median * float64(size) * float64(time.Second))
	return min(cfg.SendTimeout, max(cfg.SlowSendMin, d))
}

// paceACKed learns the pace from the ACK of a paced frame.
func (r *Router) paceACKed(d delegation) {
	if r.paced(d) {
		r.pace.add(len(d.msg.Raw), r.clock.Now().Sub(d.sentAt))
	}
}

// paceSent makes a head that ran out of a deadline shorter than
// SendTimeout a laggard (the caller re-delegates its span, as for any
// failed send).
func (r *Router) paceSent(d delegation, to peer.ID, timeout time.Duration, err error) {
	if err == nil || timeout >= r.cfg.SendTimeout || !timedOut(err) || r.ctx.Err() != nil {
		return
	}
	r.c.slowHeads.Add(1)
	r.log.Debug("head read a paced frame too slowly", "to", to, "msg_id", d.msg.ID, "timeout", timeout)
	r.markLaggard(to, d.view.set.Len())
}

// timedOut reports whether a send failed for running out of time: its
// context's deadline, or the stream's write deadline set from it.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
