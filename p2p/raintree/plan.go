package raintree

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/bits"
	"slices"
	"strings"
)

// Mode selects how a broadcast is split between recipients.
type Mode string

const (
	// ModeCover gives each recipient an explicit span of the ring, so a
	// fault-free broadcast reaches every validator exactly once.
	ModeCover Mode = "cover"
	// ModeReference is the published RainTree rule, holes and duplicates
	// included.
	ModeReference Mode = "reference"
)

// ErrUnknownMode is returned by ParseMode for anything but "cover" or
// "reference".
var ErrUnknownMode = errors.New("unknown raintree mode")

// ParseMode parses a mode name, ignoring case and surrounding spaces.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case ModeCover, ModeReference:
		return m, nil
	}
	return "", fmt.Errorf("%w: %q (want %q or %q)", ErrUnknownMode, s, ModeCover, ModeReference)
}

// Levels is the height of the tree for n validators: the smallest k with
// 3^k >= n, and 0 when n <= 1.
func Levels(n int) int {
	k := 0
	for p := uint64(1); p < uint64(max(n, 0)); p *= 3 {
		k++
	}
	return k
}

// Span is a contiguous run of the ring of sorted validators. Start is an
// absolute index; the run wraps modulo the set size.
type Span struct {
	Start, Len int
}

// Target is one message a node must send. Index is the recipient's absolute
// index in the sorted set; the recipient continues at Level-1 and below.
// Span is the part of the ring the recipient becomes responsible for and is
// only set in cover mode.
type Target struct {
	Index int
	Level int
	Span  Span
}

// OriginTargets is what the originator of a broadcast sends: every level from
// Levels(n) down to 1, perHop levels per hop in cover mode (see
// CoverTargets). Reference mode ignores perHop.
func OriginTargets(mode Mode, n, self, perHop int) []Target {
	return appendOrigin(nil, mode, n, self, perHop)
}

// HandoverTargets is how a node outside the set, a full node, hands its
// own broadcast to the validators in cover mode: the whole ring from start
// split perHop levels deep (at most MaxHandoverLevels), one target for the
// head of every part, start's own part included, biggest first. Each head
// then runs its part as if a validator root had sent it, so the tree below
// is the one a broadcast from start would have, and the full node's
// broadcast is as many hops deep as start's own.
func HandoverTargets(n, start, perHop int) []Target {
	if n < 1 {
		return nil
	}
	l := Levels(n)
	steps := handoverSteps(n, max(perHop, 1))
	dst, _ := appendParts(nil, n, mod(start, n), n, steps, l-steps+1, false)
	slices.SortStableFunc(dst, func(x, y Target) int { return cmp.Compare(y.Span.Len, x.Span.Len) })
	return dst
}

// MaxHandoverLevels bounds how deep a handover splits the ring: two
// levels, nine parts, which fit a submission (wire.MaxParts).
const MaxHandoverLevels = 2

// HandoverStart is where the handovers of the full node whose peer ID
// bytes are id start on a ring of n: FNV-1a-64 of the ID, modulo n. Full
// nodes spread over the ring, each keeps the same heads, and a validator
// can tell which parts a full node may hand over (HandoverParts).
func HandoverStart(n int, id []byte) int {
	if n < 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write(id)
	return int(h.Sum64() % uint64(n))
}

// HandoverParts lists the parts a full node with peer ID bytes id may hand
// over on a ring of n: those of HandoverTargets from its HandoverStart,
// one or two levels deep (the full node's own configuration decides).
func HandoverParts(n int, id []byte) []Span {
	start := HandoverStart(n, id)
	var out []Span
	for perHop := 1; perHop <= MaxHandoverLevels; perHop++ {
		for _, t := range HandoverTargets(n, start, perHop) {
			if !slices.Contains(out, t.Span) {
				out = append(out, t.Span)
			}
		}
	}
	return out
}

// PartLevel is the level of a tree frame for a part of length n: the one
// whose recipient can hand out all of it.
func PartLevel(n int) int { return Levels(n) + 1 }

// ReferenceTargets is what a node sends in reference mode after receiving a
// message at level: it runs levels level-1 down to 1 from its own rotated
// view. Levels above Levels(n) are treated as Levels(n).
func ReferenceTargets(n, self, level int) []Target {
	return appendReference(nil, n, self, level-1)
}

// CoverTargets is what a node sends in cover mode after receiving span at
// level. The node stands at span.Start. At each level from level-1 down it
// splits its span in three, sends the second and third parts to their heads
// and keeps the first, until only itself is left. A span longer than
// 3^(level-1) cannot be fully handed out; Broadcast never produces one.
//
// With perHop p > 1 the node runs p levels in one hop: it splits each part
// again p-1 times and sends every part but its own straight to the part's
// head, biggest part first, so a hop fans out to up to 3^p-1 recipients
// and the tree is ⌈levels/p⌉ hops deep. Every target of a hop that covered
// levels l..l-p+1 gets Level l-p+1, since its part is at most 3^(l-p)
// long. The message count stays n-1 for any p, and a recipient may use
// another p than its sender: the span bounds what it hands out, not the
// sender's p. perHop below 1 means 1.
func CoverTargets(n int, span Span, level, perHop int) []Target {
	return appendCover(nil, n, span, level-1, perHop)
}

// Redelegate moves the responsibility of a target whose head did not
// acknowledge to the next validator of its span. It reports false when
// nobody is left in the span.
func Redelegate(n int, t Target) (Target, bool) {
	if n <= 0 || t.Span.Len <= 1 {
		return Target{}, false
	}
	next := mod(t.Span.Start+1, n)
	return Target{Index: next, Level: t.Level, Span: Span{Start: next, Len: min(t.Span.Len-1, n)}}, true
}

func appendOrigin(dst []Target, mode Mode, n, self, perHop int) []Target {
	switch mode {
	case ModeReference:
		return appendReference(dst, n, self, Levels(n))
	case ModeCover:
		return appendCover(dst, n, Span{Start: self, Len: n}, Levels(n), perHop)
	}
	return dst
}

// appendReference runs levels top..1 of the published rule for self.
func appendReference(dst []Target, n, self, top int) []Target {
	if n <= 1 {
		return dst
	}
	levels := Levels(n)
	top = min(top, levels)
	self = mod(self, n)
	for l := top; l >= 1; l-- {
		w := window(n, levels-l)
		for _, r := range [2]int{w / 3, 2 * w / 3} {
			if r == 0 {
				continue // demote: self keeps going at the next level
			}
			dst = append(dst, Target{Index: (self + r) % n, Level: l})
		}
	}
	return dst
}

// window is floor(n * 2^k / 3^k), computed exactly. The quotient is below
// n, so the 128-bit division cannot overflow.
func window(n, k int) int {
	p3 := uint64(1)
	for range k {
		p3 *= 3
	}
	hi, lo := bits.Mul64(uint64(n), uint64(1)<<k)
	q, _ := bits.Div64(hi, lo, p3)
	return int(q)
}

// appendCover runs levels top..1 of the cover rule for the node at
// span.Start, perHop levels per hop.
func appendCover(dst []Target, n int, span Span, top, perHop int) []Target {
	if n <= 1 {
		return dst
	}
	start, length := mod(span.Start, n), min(span.Len, n)
	perHop = max(perHop, 1)
	for l := top; l >= 1 && length > 1; l -= perHop {
		steps := min(perHop, l)
		mark := len(dst)
		var own int
		dst, own = appendParts(dst, n, start, length, steps, l-steps+1, true)
		// Biggest part first: it has the most levels still to run.
		slices.SortStableFunc(dst[mark:], func(x, y Target) int { return cmp.Compare(y.Span.Len, x.Span.Len) })
		length = own
	}
	return dst
}

// appendParts splits the run of length at start in three, steps times
// over, and appends a target at level for the head of every resulting
// part, except the first part when keepFirst: the node at start keeps it,
// and its length is returned. Parts are appended in ring order.
func appendParts(dst []Target, n, start, length, steps, level int, keepFirst bool) ([]Target, int) {
	if steps == 0 || length <= 1 {
		if !keepFirst {
			dst = append(dst, Target{Index: start, Level: level, Span: Span{Start: start, Len: length}})
		}
		return dst, length
	}
	a := (length + 2) / 3
	rest := length - a
	b := (rest + 1) / 2
	c := rest - b
	dst, own := appendParts(dst, n, start, a, steps-1, level, keepFirst)
	dst, _ = appendParts(dst, n, (start+a)%n, b, steps-1, level, false)
	if c > 0 {
		dst, _ = appendParts(dst, n, (start+a+b)%n, c, steps-1, level, false)
	}
	return dst, own
}

// Hops is the network hop at which a cover-mode broadcast over a ring of
// n first reaches the validator offset places after its root (0 for the
// root itself), perHop levels per hop, without faults: the hop Broadcast
// records for it. It runs in O(levels) time.
func Hops(n, offset, perHop int) int {
	if n <= 1 {
		return 0
	}
	return hopsTo(n, Levels(n), max(perHop, 1), mod(offset, n))
}

// HandoverHops is Hops for a full node's handover in parts from start
// (HandoverTargets): the hop at which it reaches the validator offset
// places after start. The full node's own send to the heads is hop 1.
func HandoverHops(n, offset, perHop int) int {
	if n < 1 {
		return 0
	}
	perHop = max(perHop, 1)
	o := mod(offset, n)
	head, plen := partAt(n, handoverSteps(n, perHop), o)
	return 1 + hopsTo(plen, Levels(plen), perHop, o-head)
}

// HandoverTreeHops is the hop at which a full node's handover in parts
// reaches its last validator, wherever it starts (TreeHops for a
// handover).
func HandoverTreeHops(n, perHop int) int {
	if n < 1 {
		return 0
	}
	perHop = max(perHop, 1)
	parts, _ := appendParts(nil, n, 0, n, handoverSteps(n, perHop), 0, false)
	last := 0
	for _, p := range distinctLengths(parts) {
		last = max(last, 1+spanHops(p, Levels(p), perHop))
	}
	return last
}

// handoverSteps is how many levels a handover splits the ring of n.
func handoverSteps(n, perHop int) int { return min(perHop, MaxHandoverLevels, Levels(n)) }

// hopsTo is the hop at which the node heading a span of length, top
// levels high, reaches offset o of it.
func hopsTo(length, top, perHop, o int) int {
	hops := 0
	for o != 0 {
		head, plen, rest, ok := nextHead(length, top, perHop, o)
		if !ok {
			return hops
		}
		hops++
		o, length, top = o-head, plen, rest
	}
	return hops
}

// nextHead follows the hops of the node at offset 0 of a span of length,
// top levels high, to the part that holds offset o: its head's offset,
// its length, and the levels its head runs below it.
func nextHead(length, top, perHop, o int) (head, plen, rest int, ok bool) {
	for l := top; l >= 1 && length > 1; l -= perHop {
		steps := min(perHop, l)
		head, plen = partAt(length, steps, o)
		if head != 0 {
			return head, plen, l - steps, true
		}
		length = plen
	}
	return 0, 0, 0, false
}

// partAt is the part holding offset o when a run of length is split in
// three steps times over, as appendParts splits it: its offset and length.
func partAt(length, steps, o int) (start, plen int) {
	for ; steps > 0 && length > 1; steps-- {
		a := (length + 2) / 3
		b := (length - a + 1) / 2
		switch {
		case o < a:
			length = a
		case o < a+b:
			start, o, length = start+a, o-a, b
		default:
			start, o, length = start+a+b, o-a-b, length-a-b
		}
	}
	return start, length
}

// TreeHops is the hop at which a cover-mode broadcast over a ring of n,
// perHop levels per hop, reaches its last validator without faults
// (Broadcast's LastDeliveryHop), whatever its root.
func TreeHops(n, perHop int) int {
	if n <= 1 {
		return 0
	}
	return spanHops(n, Levels(n), max(perHop, 1))
}

// spanHops is how many hops the node heading a span of length, top
// levels high, takes to reach all of it. Parts of the same length run the
// same tree, so each split follows each length once.
func spanHops(length, top, perHop int) int {
	deepest := 0
	for l := top; l >= 1 && length > 1; l -= perHop {
		steps := min(perHop, l)
		parts, own := appendParts(nil, length, 0, length, steps, 0, true)
		for _, p := range distinctLengths(parts) {
			deepest = max(deepest, 1+spanHops(p, l-steps, perHop))
		}
		length = own
	}
	return deepest
}

// distinctLengths lists the lengths of the spans of targets, once each.
func distinctLengths(targets []Target) []int {
	var out []int
	for _, t := range targets {
		if !slices.Contains(out, t.Span.Len) {
			out = append(out, t.Span.Len)
		}
	}
	return out
}

func mod(i, n int) int {
	i %= n
	if i < 0 {
		i += n
	}
	return i
}

// Options describe the network a Broadcast is planned over. The zero value
// is a fault-free network without ACKs.
type Options struct {
	// Down marks nodes that never started: they neither receive nor
	// forward. Nil or length n.
	Down []bool
	// Silent marks nodes that receive but never forward. Nil or length n.
	// The origin still originates when silent.
	Silent []bool
	// ACK makes senders re-delegate (see Redelegate) around down
	// recipients. Silent nodes are alive and acknowledge, so they are not
	// re-delegated, unless CheckForwarding. Cover mode only: reference
	// messages carry no span.
	ACK bool
	// CheckForwarding makes senders, with ACK, re-delegate the rest of the
	// span of a silent recipient that had others to forward to, as
	// routers do for paced (large) frames (Config.CheckForwarding): the
	// silent node keeps its copy, the next validator of its span takes
	// the rest.
	CheckForwarding bool
	// MaxRetries bounds re-delegations per target; 0 means as many as the
	// span allows.
	MaxRetries int
	// RecordEdges keeps every message in Plan.Edges, for printing.
	RecordEdges bool
	// LevelsPerHop is how many tree levels a cover-mode hop runs (see
	// CoverTargets); 0 means 1, the ternary tree.
	LevelsPerHop int
}

// Edge is one payload message of a plan. Hop counts network messages from
// the origin, so the origin's own messages have hop 1.
type Edge struct {
	From, To, Level, Hop int
	Span                 Span
	Redelegated          bool
}

// Plan is the predicted outcome of one broadcast. Indexes are 0-based
// positions in the sorted validator set.
type Plan struct {
	Size, Origin int
	Mode         Mode
	Levels       int
	// Messages counts payload messages sent, including those to down nodes.
	Messages int
	// LastDeliveryHop is the largest first-delivery hop over covered nodes,
	// assuming every message takes the same time.
	LastDeliveryHop int
	// Uncovered lists live non-origin nodes that never received; never nil.
	Uncovered []int
	// Reads and Writes count network messages received and sent per node.
	Reads, Writes []int
	// Edges lists every message in depth-first order (a node's message,
	// then everything it caused), when Options.RecordEdges is set.
	Edges []Edge
	// Redelegations lists the re-delegated messages, recorded always: they
	// are the payload a node sends beyond its Neighbours.
	Redelegations []Edge
}

// Broadcast plans a whole broadcast from origin by calling the same step
// functions a router calls on each node. It runs in O(messages) time and
// O(n) memory. It panics if n < 1, origin is outside [0, n), mode is
// unknown, or Down/Silent have a length other than 0 or n.
func Broadcast(n, origin int, mode Mode, opts Options) Plan {
	if n < 1 || origin < 0 || origin >= n {
		panic(fmt.Sprintf("raintree: Broadcast(n=%d, origin=%d): origin must be in [0, n)", n, origin))
	}
	if mode != ModeCover && mode != ModeReference {
		panic(fmt.Sprintf("raintree: Broadcast: %v: %q", ErrUnknownMode, mode))
	}
	if (opts.Down != nil && len(opts.Down) != n) || (opts.Silent != nil && len(opts.Silent) != n) {
		panic(fmt.Sprintf("raintree: Broadcast: Down/Silent must have length %d", n))
	}
	levels := Levels(n)
	b := &broadcaster{
		n:        n,
		mode:     mode,
		opts:     opts,
		firstHop: make([]int32, n),
		reads:    make([]int, n),
		writes:   make([]int, n),
		bufs:     make([][]Target, levels+2),
	}
	if mode == ModeCover {
		b.done = make([]bool, n)
		b.done[origin] = true // the origin already owns the whole ring
	}
	if !b.down(origin) {
		b.forward(origin, appendOrigin(b.bufs[0][:0], mode, n, origin, opts.LevelsPerHop), 1)
	}
	p := Plan{
		Size:      n,
		Origin:    origin,
		Mode:      mode,
		Levels:    levels,
		Messages:  b.messages,
		Uncovered: []int{},
		Reads:     b.reads,
		Writes:    b.writes,
		Edges:     b.edges,

		Redelegations: b.redelegations,
	}
	for i, h := range b.firstHop {
		switch {
		case i == origin || b.down(i):
		case h == 0:
			p.Uncovered = append(p.Uncovered, i)
		default:
			p.LastDeliveryHop = max(p.LastDeliveryHop, int(h))
		}
	}
	return p
}

type broadcaster struct {
	n             int
	mode          Mode
	opts          Options
	messages      int
	firstHop      []int32 // 0 = never received
	done          []bool  // cover: node has already propagated its span
	reads         []int
	writes        []int
	edges         []Edge
	redelegations []Edge
	bufs          [][]Target // one target buffer per hop, reused
}

func (b *broadcaster) down(i int) bool { return b.opts.Down != nil && b.opts.Down[i] }

// lost reports whether the sender of t re-delegates it: its head is down,
// or silent with others in its span while forwarding is checked.
func (b *broadcaster) lost(t Target) bool {
	return b.down(t.Index) || b.opts.CheckForwarding && b.silent(t.Index) && t.Span.Len > 1
}
func (b *broadcaster) silent(i int) bool { return b.opts.Silent != nil && b.opts.Silent[i] }

// forward sends targets from node `from`; hop is the hop of those messages.
// Recursion depth is bounded by the number of levels.
func (b *broadcaster) forward(from int, targets []Target, hop int) {
	for _, t := range targets {
		b.send(from, t, hop, false)
		retries := 0
		for b.lost(t) && b.opts.ACK && b.mode == ModeCover &&
			(b.opts.MaxRetries == 0 || retries < b.opts.MaxRetries) {
			next, ok := Redelegate(b.n, t)
			if !ok {
				break
			}
			t = next
			retries++
			b.send(from, t, hop, true)
		}
	}
}

func (b *broadcaster) send(from int, t Target, hop int, redelegated bool) {
	b.messages++
	b.writes[from]++
	if b.opts.RecordEdges || redelegated {
		e := Edge{From: from, To: t.Index, Level: t.Level, Hop: hop, Span: t.Span, Redelegated: redelegated}
		if b.opts.RecordEdges {
			b.edges = append(b.edges, e)
		}
		if redelegated {
			b.redelegations = append(b.redelegations, e)
		}
	}
	to := t.Index
	if b.down(to) {
		return
	}
	b.reads[to]++
	if h := b.firstHop[to]; h == 0 || int(h) > hop {
		b.firstHop[to] = int32(hop)
	}
	if b.silent(to) {
		return
	}
	var next []Target
	switch b.mode {
	case ModeReference:
		next = appendReference(b.bufs[hop][:0], b.n, to, t.Level-1)
	case ModeCover:
		if b.done[to] {
			return // same responsibility again: propagate once
		}
		b.done[to] = true
		next = appendCover(b.bufs[hop][:0], b.n, t.Span, t.Level-1, b.opts.LevelsPerHop)
	}
	b.bufs[hop] = next
	b.forward(to, next, hop+1)
}

// WriteTree prints the plan's messages as an indented tree rooted at the
// origin, with 1-based ids. It needs a plan built with RecordEdges.
func (p Plan) WriteTree(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%d (origin)", p.Origin+1)
	if p.Mode == ModeCover {
		fmt.Fprintf(bw, " span %s", p.formatSpan(Span{Start: p.Origin, Len: p.Size}))
	}
	bw.WriteString("\n")
	if p.Messages > 0 && len(p.Edges) == 0 {
		bw.WriteString("(messages were not recorded)\n")
	}
	last := lastSiblings(p.Edges)
	ancestorLast := make([]bool, p.Levels+2)
	for i, e := range p.Edges {
		for h := 1; h < e.Hop; h++ {
			if ancestorLast[h] {
				bw.WriteString("   ")
			} else {
				bw.WriteString("│  ")
			}
		}
		if last[i] {
			bw.WriteString("└─ ")
		} else {
			bw.WriteString("├─ ")
		}
		ancestorLast[e.Hop] = last[i]
		fmt.Fprintf(bw, "L%d → %d", e.Level, e.To+1)
		if p.Mode == ModeCover {
			fmt.Fprintf(bw, " span %s", p.formatSpan(e.Span))
		}
		if e.Redelegated {
			bw.WriteString(" (re-delegated)")
		}
		bw.WriteString("\n")
	}
	return bw.Flush()
}

// formatSpan writes a span with 1-based ids, e.g. "25..3 (6)" when it wraps.
func (p Plan) formatSpan(s Span) string {
	if s.Len <= 0 {
		return "empty"
	}
	first := s.Start + 1
	last := (s.Start+s.Len-1)%p.Size + 1
	return fmt.Sprintf("%d..%d (%d)", first, last, s.Len)
}

// lastSiblings reports, for edges in depth-first order, which ones are the
// last child of their parent.
func lastSiblings(edges []Edge) []bool {
	last := make([]bool, len(edges))
	if len(edges) == 0 {
		return last
	}
	maxHop := 0
	for _, e := range edges {
		maxHop = max(maxHop, e.Hop)
	}
	laterSibling := make([]bool, maxHop+2)
	for i := len(edges) - 1; i >= 0; i-- {
		h := edges[i].Hop
		last[i] = !laterSibling[h]
		laterSibling[h] = true
		clear(laterSibling[h+1:]) // deeper edges seen so far belong to later subtrees
	}
	return last
}
