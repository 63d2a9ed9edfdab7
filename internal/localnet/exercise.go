package localnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rainp2p/rainp2p/internal/admin"
)

// Message kinds.
const (
	KindBroadcast = "broadcast"
	KindUnicast   = "unicast"
)

// message is one broadcast or unicast the run sent.
type message struct {
	kind    string
	seq     int // 1-based within its kind
	from    *Node
	to      *Node // unicast only
	payload string
	nonce   string
	sentNS  int64
}

func (m *message) String() string {
	if m.kind == KindUnicast {
		return fmt.Sprintf("unicast %d (%s→%s, nonce %s)", m.seq, m.from.Name, m.to.Name, m.nonce)
	}
	return fmt.Sprintf("broadcast %d (from %s, nonce %s)", m.seq, m.from.Name, m.nonce)
}

// receivers are the nodes that must deliver m: the target of a unicast,
// every other live node for a broadcast.
func (m *message) receivers(live []*Node) []*Node {
	if m.kind == KindUnicast {
		return []*Node{m.to}
	}
	out := make([]*Node, 0, len(live))
	for _, nd := range live {
		if nd != m.from {
			out = append(out, nd)
		}
	}
	return out
}

// Run starts the network described by cfg, exercises it, and stops it.
// Progress lines go to progress. The error is about the harness (bad
// config, nodes that never got ready, an interrupted run); lost or
// duplicated messages are in the Report, with OK false.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	n, err := Start(ctx, cfg, progress)
	if err != nil {
		return nil, err
	}
	rep, err := n.Exercise(ctx)
	if cerr := n.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("stopping the network: %w", cerr))
	}
	return rep, err
}

// Exercise sends the configured broadcasts and unicasts, waits until every
// live node has delivered what it should (or Settle passes), and reports.
func (n *Network) Exercise(ctx context.Context) (*Report, error) {
	msgs := n.plan()
	live := n.Live()
	var sendErrs []string
	for _, m := range msgs {
		if err := n.sendOne(ctx, m); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("sending %s: %w", m.kind, context.Cause(ctx))
			}
			sendErrs = append(sendErrs, fmt.Sprintf("%s %d from %s: %v", m.kind, m.seq, m.from.Name, err))
			n.logf("%s %d from %s failed: %v", m.kind, m.seq, m.from.Name, err)
			continue
		}
		n.logf("%s %d/%d %s", m.kind, m.seq, n.count(msgs, m.kind), m.describe())
	}
	got, pollErrs, err := n.collect(ctx, msgs, live)
	if err != nil {
		return nil, err
	}
	rep := n.report(ctx, msgs, got)
	rep.Errors = append(rep.Errors, sendErrs...)
	if len(sendErrs) > 0 {
		rep.OK = false
	}
	addPollErrors(rep, live, pollErrs)
	if !rep.OK {
		n.preserve.Store(true)
		rep.Dir = n.dir
		n.explain(rep)
	}
	return rep, nil
}

func (m *message) describe() string {
	if m.kind == KindUnicast {
		return fmt.Sprintf("%s → %s", m.from.Name, m.to.Name)
	}
	return "from " + m.from.Name
}

func (n *Network) count(msgs []*message, kind string) int {
	c := 0
	for _, m := range msgs {
		if m.kind == kind {
			c++
		}
	}
	return c
}

// plan picks the origin of every broadcast, alternating validators and full
// nodes, and the ends of every unicast, cycling through the role pairs the
// network has. Silent nodes never originate; they only receive.
func (n *Network) plan() []*message {
	var vs, fs, liveV []*Node
	for _, nd := range n.Live() {
		switch {
		case nd.Role == RoleFullNode:
			fs = append(fs, nd)
		case nd.Silent:
			liveV = append(liveV, nd)
		default:
			vs = append(vs, nd)
			liveV = append(liveV, nd)
		}
	}
	var msgs []*message
	vi, fi := 0, 0
	for i := range n.cfg.Broadcasts {
		var from *Node
		if len(fs) == 0 || (i%2 == 0 && len(vs) > 0) {
			from = vs[vi%len(vs)]
			vi++
		} else {
			from = fs[fi%len(fs)]
			fi++
		}
		msgs = append(msgs, &message{kind: KindBroadcast, seq: i + 1, from: from,
			payload: fmt.Sprintf("localnet broadcast %d from %s", i+1, from.Name)})
	}

	type pair struct{ from, to []*Node }
	var pairs []pair
	for _, p := range []pair{{vs, liveV}, {vs, fs}, {fs, liveV}, {fs, fs}} {
		if len(p.from) > 0 && len(others(p.to, p.from[0])) > 0 {
			pairs = append(pairs, p)
		}
	}
	if len(pairs) == 0 {
		return msgs
	}
	for j := range n.cfg.Unicasts {
		p, round := pairs[j%len(pairs)], j/len(pairs)
		from := p.from[round%len(p.from)]
		to := others(p.to, from)
		if len(to) == 0 { // a role with a single sender that is also the only target
			from = p.from[0]
			to = others(p.to, from)
		}
		target := to[(round+j)%len(to)]
		msgs = append(msgs, &message{kind: KindUnicast, seq: j + 1, from: from, to: target,
			payload: fmt.Sprintf("localnet unicast %d from %s to %s", j+1, from.Name, target.Name)})
	}
	return msgs
}

func others(nodes []*Node, not *Node) []*Node {
	var out []*Node
	for _, nd := range nodes {
		if nd != not {
			out = append(out, nd)
		}
	}
	return out
}

// sendOne posts m to its origin's admin API. A target a full node has not
// discovered yet answers 404 and a peer it cannot reach yet 503, so those
// are retried for a while; each attempt is a new envelope, and only the
// accepted one is expected.
func (n *Network) sendOne(ctx context.Context, m *message) error {
	deadline := time.Now().Add(n.cfg.Settle / 2)
	backoff := 100 * time.Millisecond
	for {
		var (
			s   sent
			err error
		)
		if m.kind == KindUnicast {
			s, err = n.api.send(ctx, m.from.AdminURL(), m.to.Address.String(), m.payload)
		} else {
			s, err = n.api.broadcast(ctx, m.from.AdminURL(), m.payload)
		}
		if err == nil {
			m.nonce, m.sentNS = s.Nonce, s.SentUnixNS
			return nil
		}
		if !retryable(err) || time.Now().After(deadline) || m.endExited() {
			return err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		backoff = min(2*backoff, time.Second)
	}
}

// endExited reports whether either end of m has died, which no retry fixes.
func (m *message) endExited() bool {
	if exited, _ := m.from.exited(); exited {
		return true
	}
	if m.to != nil {
		exited, _ := m.to.exited()
		return exited
	}
	return false
}

// history is what one node delivered of the run's messages, by nonce.
type history map[string][]admin.Message

// addPollErrors reports the nodes whose delivery history could not be read
// on the last poll: what they delivered is unknown, so the run fails.
func addPollErrors(rep *Report, live []*Node, pollErrs map[*Node]error) {
	for _, nd := range live { // in node order, for a stable report
		if err := pollErrs[nd]; err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("reading %s's deliveries: %v", nd.Name, err))
			rep.OK = false
		}
	}
}

// collect polls every live node's delivery history until each node has
// every message meant for it, or Settle passes, then keeps watching for
// Grace to catch late duplicates. Alongside the histories it returns, per
// node, the error of the last poll when that poll failed; such a node's
// history is empty.
func (n *Network) collect(ctx context.Context, msgs []*message, live []*Node) (map[*Node]history, map[*Node]error, error) {
	ours := map[string]bool{}
	for _, m := range msgs {
		if m.nonce != "" {
			ours[m.nonce] = true
		}
	}
	pollErrs := map[*Node]error{}
	fetch := func() map[*Node]history {
		got := make(map[*Node]history, len(live))
		for _, nd := range live {
			h := history{}
			got[nd] = h
			if exited, _ := nd.exited(); exited {
				delete(pollErrs, nd) // reported as exited instead
				continue
			}
			fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ms, err := n.api.messages(fctx, nd.AdminURL())
			cancel()
			if err != nil {
				pollErrs[nd] = err
				continue
			}
			delete(pollErrs, nd)
			for _, m := range ms {
				if ours[m.Nonce] {
					h[m.Nonce] = append(h[m.Nonce], m)
				}
			}
		}
		return got
	}
	complete := func(got map[*Node]history) bool {
		for _, m := range msgs {
			if m.nonce == "" {
				continue
			}
			for _, r := range m.receivers(live) {
				if exited, _ := r.exited(); !exited && len(got[r][m.nonce]) == 0 {
					return false
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(n.cfg.Settle)
	for {
		got := fetch()
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("collecting deliveries: %w", context.Cause(ctx))
		}
		if complete(got) {
			n.logf("all deliveries in; watching %v for duplicates", n.cfg.Grace)
			break
		}
		if time.Now().After(deadline) {
			n.logf("settle timeout (%v) reached with deliveries missing", n.cfg.Settle)
			return got, pollErrs, nil
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("collecting deliveries: %w", context.Cause(ctx))
		}
	}
	select {
	case <-time.After(n.cfg.Grace):
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("collecting deliveries: %w", context.Cause(ctx))
	}
	got := fetch()
	if ctx.Err() != nil {
		return nil, nil, fmt.Errorf("collecting deliveries: %w", context.Cause(ctx))
	}
	return got, pollErrs, nil
}
