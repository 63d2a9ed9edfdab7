package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rainp2p/rainp2p/p2p"
)

// Result is what a run measured, one entry per strategy. Its JSON form is
// the sim command's --json output; fields a mode cannot measure are null.
type Result struct {
	// Mode is "plan" or "network".
	Mode             string `json:"mode"`
	Validators       int    `json:"validators"`
	FullNodes        int    `json:"fullnodes"`
	Broadcasts       int    `json:"broadcasts"`
	DownValidators   int    `json:"down_validators"`
	SilentValidators int    `json:"silent_validators"`
	Seed             uint64 `json:"seed"`
	// TimeBase says what the durations were measured in: TimeWall or
	// TimeVirtual; null in plan mode, which measures no time.
	TimeBase TimeBase `json:"time_base"`
	// Links describes the simulated links; null in plan mode.
	Links      *LinkModel       `json:"links"`
	Strategies []StrategyResult `json:"strategies"`
}

// TimeBase is TimeWall, TimeVirtual or empty (JSON null).
type TimeBase string

// MarshalJSON writes the empty TimeBase as null.
func (t TimeBase) MarshalJSON() ([]byte, error) {
	if t == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(t))
}

// LinkModel is the link model of a network run. Bandwidths are null in wall
// time, where mocknet does not limit them.
type LinkModel struct {
	// LatencyMS and LatencyMaxMS bound the one-way link latencies; they
	// are equal when every link has the same.
	LatencyMS    float64 `json:"latency_ms"`
	LatencyMaxMS float64 `json:"latency_max_ms"`
	UplinkBPS    *int    `json:"uplink_bps"`
	DownlinkBPS  *int    `json:"downlink_bps"`
}

// StrategyResult is one strategy's measurements. A target is a (live node,
// broadcast) pair the strategy is meant to reach: every live validator for
// RainTree alone, every live node otherwise, the origin excepted. Silent
// nodes are targets; down nodes are not.
type StrategyResult struct {
	Name string `json:"name"`
	// DeliveryRatio is delivered targets over targets; null when there
	// are no targets (a single live node, e.g. --plan --validators 1).
	DeliveryRatio *float64 `json:"delivery_ratio"`
	// ValidatorDeliveryRatio and FullNodeDeliveryRatio restrict targets to
	// validators or full nodes; null when there are none to reach (full
	// nodes are never targets of RainTree alone).
	ValidatorDeliveryRatio *float64 `json:"validator_delivery_ratio"`
	FullNodeDeliveryRatio  *float64 `json:"fullnode_delivery_ratio"`
	// PayloadMessagesPerBroadcast counts copies of the payload sent, on
	// every router, averaged over broadcasts.
	PayloadMessagesPerBroadcast float64 `json:"payload_messages_per_broadcast"`
	// PayloadBytesPerBroadcast is the encoded size of those copies (network
	// mode only).
	PayloadBytesPerBroadcast *float64 `json:"payload_bytes_per_broadcast"`
	// WireBytesPerBroadcast is every byte the routers wrote, control
	// traffic included, averaged over broadcasts (network mode only).
	WireBytesPerBroadcast *float64 `json:"wire_bytes_per_broadcast"`
	// DuplicatesPerNode is redundant payload copies received (beyond each
	// node's first), per live node and broadcast.
	DuplicatesPerNode float64 `json:"duplicates_per_node"`
	// CoverageMS is, over broadcasts, the time from send to the last
	// target's first delivery (to the last delivery when some target was
	// never reached). ValidatorCoverageMS counts validator targets only.
	// Network mode only.
	CoverageMS          *Quantiles `json:"coverage_ms"`
	ValidatorCoverageMS *Quantiles `json:"validator_coverage_ms"`
	// FullNodeCoverageMS counts full-node targets only; null for RainTree
	// alone.
	FullNodeCoverageMS *Quantiles `json:"fullnode_coverage_ms"`
	// LastDeliveryHop is the depth, in messages from the origin, of the
	// last first delivery, over broadcasts. Plan mode only.
	LastDeliveryHop *HopStats `json:"last_delivery_hop"`
	// RainTreePeersPerValidator counts the distinct validators a validator
	// sends RainTree payload to (outgoing): its targets over broadcasts
	// from every origin, plus re-delegations beyond them in the planned
	// broadcasts. Plan mode only.
	RainTreePeersPerValidator *PeerStats `json:"raintree_peers_per_validator"`
	// ConnectionsPerNode is, over running nodes, how many peers each is
	// connected to at the end of the run, once every connection made at
	// start-up has had a chance to be trimmed. Network mode only.
	ConnectionsPerNode *CountQuantiles `json:"connections_per_node"`
	// PeakRSSBytes is the process's peak resident memory (VmHWM) during
	// this strategy's run, the peak reset before it; null where /proc
	// does not tell. Network mode only.
	PeakRSSBytes *int64 `json:"peak_rss_bytes"`
	// PayloadCopiesPerNode is payload copies received per running node
	// and broadcast, by the recipient's role. Network mode only.
	PayloadCopiesPerNode *RoleCopies `json:"payload_copies_per_node"`

	// Repairs adds up, over every node, what the routers did to get
	// around faults during the run. Network mode only.
	Repairs *Repairs `json:"repairs"`
	// Pacing adds up, over every node, how large gossip writes were held
	// back for their peers (busy notices, asks to send).
	Pacing *Pacing `json:"pacing"`

	// PerBroadcast lists the broadcasts in the order sent: where each
	// started, how long it took and which router reached its targets
	// first, so a slow tail can be traced to its broadcasts. Network mode
	// only.
	PerBroadcast []BroadcastResult `json:"per_broadcast"`

	// WallMS is the wall-clock time this strategy's run took, network
	// set-up included: the cost of the measurement, not a measurement.
	// Network mode only.
	WallMS *float64 `json:"wall_ms"`

	// Curve holds the first-delivery delay of every delivered target,
	// sorted; with Targets it draws the coverage-over-time curve.
	Curve   []time.Duration `json:"-"`
	Targets int             `json:"-"`
}

// Quantiles summarise per-broadcast times in milliseconds.
type Quantiles struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// HopStats summarise per-broadcast hop depths.
type HopStats struct {
	Mean float64 `json:"mean"`
	Max  int     `json:"max"`
}

// CountQuantiles summarise a per-node count by nearest rank.
type CountQuantiles struct {
	P50 int `json:"p50"`
	P99 int `json:"p99"`
	Max int `json:"max"`
}

// countQuantiles returns the quantiles of counts, or nil for none.
func countQuantiles(counts []int) *CountQuantiles {
	if len(counts) == 0 {
		return nil
	}
	s := slices.Clone(counts)
	slices.Sort(s)
	rank := func(q float64) int {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return &CountQuantiles{P50: rank(0.50), P99: rank(0.99), Max: s[len(s)-1]}
}

// BroadcastResult is one broadcast of a network run.
type BroadcastResult struct {
	// Origin is the sending node's index (validators first, in set
	// order); OriginRole is "validator" or "fullnode".
	Origin     int    `json:"origin"`
	OriginRole string `json:"origin_role"`
	// Reached counts the targets that delivered it, of Targets.
	Reached int `json:"reached"`
	Targets int `json:"targets"`
	// ValidatorCoverageMS and FullNodeCoverageMS are the times from send
	// to the last first delivery among validator and full-node targets;
	// null when none of them delivered it.
	ValidatorCoverageMS *float64 `json:"validator_coverage_ms"`
	FullNodeCoverageMS  *float64 `json:"fullnode_coverage_ms"`
	// FirstVia counts reached targets by the router that delivered to
	// them first ("raintree" or "background"), LastValidatorVia names it
	// for the last validator reached (null when none was).
	FirstVia         map[string]int `json:"first_via"`
	LastValidatorVia *string        `json:"last_validator_via"`
	// LastValidator and LastFullNode are the node indices of the last
	// validator and full node reached; null when none was.
	LastValidator *int `json:"last_validator"`
	LastFullNode  *int `json:"last_fullnode"`
}

// Roles of a node in BroadcastResult.OriginRole.
const (
	RoleValidator = "validator"
	RoleFullNode  = "fullnode"
)

// RoleCopies is a per-node figure by role; a role with no running node is
// null.
type RoleCopies struct {
	Validator *float64 `json:"validator"`
	FullNode  *float64 `json:"fullnode"`
}

// Repairs are the routers' counts of what they did around faults, summed
// over the nodes of a run: what makes a slow tail slow, next to
// per_broadcast.
type Repairs struct {
	// RainTreeRetries are spans re-delegated to the next validator (a
	// missing ACK or proof of forwarding, a head skipped), RainTreeGaveUp
	// frames nobody was left to take over (a span of one that failed),
	// RainTreeNotForwarded heads that acknowledged a block and proved no
	// forwarding, RainTreeSlowHeads heads that read a block so slowly
	// that its send was given up (raintree.Config.SlowSendFactor).
	RainTreeRetries      uint64 `json:"raintree_retries"`
	RainTreeGaveUp       uint64 `json:"raintree_gave_up"`
	RainTreeNotForwarded uint64 `json:"raintree_not_forwarded"`
	RainTreeSlowHeads    uint64 `json:"raintree_slow_heads"`
	// BlocksUnproven are full nodes' blocks whose parent proved nothing
	// in time, BlocksResubmitted the hand-overs to a next parent, and
	// SubmitFallbacks the submissions a full node published itself.
	BlocksUnproven    uint64 `json:"blocks_unproven"`
	BlocksResubmitted uint64 `json:"blocks_resubmitted"`
	SubmitFallbacks   uint64 `json:"submit_fallbacks"`
	// GossipRepairsSent are full nodes' copies to validators of their mesh
	// that had not said they had a small message RainTree should have
	// brought them (GossipParams.RepairSlack), GossipRepairsTaken those
	// validators took.
	GossipRepairsSent  uint64 `json:"gossip_repairs_sent"`
	GossipRepairsTaken uint64 `json:"gossip_repairs_taken"`
}

// add counts one node's stats.
func (r *Repairs) add(s p2p.Stats) {
	r.RainTreeRetries += s.RainTree.Retries
	r.RainTreeGaveUp += s.RainTree.GaveUp
	r.RainTreeNotForwarded += s.RainTree.NotForwarded
	r.RainTreeSlowHeads += s.RainTree.SlowHeads
	r.BlocksUnproven += s.Background.SubmitUnproven
	r.BlocksResubmitted += s.Background.Resubmitted
	r.SubmitFallbacks += s.Background.SubmitFallbacks
	r.GossipRepairsSent += s.Background.RepairsSent
	r.GossipRepairsTaken += s.Background.RepairsTaken
}

// Pacing are the background routers' counts of large gossip writes held
// for their peers, summed over every node: BusyHeld writes held by a busy
// notice, CopiesDeclined copies then left out (the peer said IDONTWANT),
// AsksSent asks to send a write (GossipParams.ClearWait), AsksRefused
// those answered busy, AsksUnanswered those not answered in time (the
// write then went unasked), AsksMuted the peers then not asked for a
// minute (no answer in time, or a slow one), and AnswersDropped answers
// not sent.
type Pacing struct {
	BusyHeld       uint64 `json:"busy_held"`
	CopiesDeclined uint64 `json:"copies_declined"`
	AsksSent       uint64 `json:"asks_sent"`
	AsksRefused    uint64 `json:"asks_refused"`
	AsksUnanswered uint64 `json:"asks_unanswered"`
	AsksMuted      uint64 `json:"asks_muted"`
	AnswersDropped uint64 `json:"answers_dropped"`
}

// add counts one node's stats.
func (p *Pacing) add(s p2p.Stats) {
	b := s.Background
	p.BusyHeld += b.LargeWritesHeldBusy
	p.CopiesDeclined += b.CopiesDeclined
	p.AsksSent += b.AsksSent
	p.AsksRefused += b.AsksRefused
	p.AsksUnanswered += b.AsksUnanswered
	p.AsksMuted += b.AsksMuted
	p.AnswersDropped += b.AnswersDropped
}

// PeerStats summarise a per-validator count of peers.
type PeerStats struct {
	Mean float64 `json:"mean"`
	Max  int     `json:"max"`
}

// quantilesMS returns nearest-rank quantiles of ds in milliseconds, or nil
// for no samples.
func quantilesMS(ds []time.Duration) *Quantiles {
	if len(ds) == 0 {
		return nil
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return &Quantiles{P50: ms(rank(0.50)), P99: ms(rank(0.99)), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// ratio is num/den rounded, or nil when den is 0.
func ratio(num, den int) *float64 {
	if den == 0 {
		return nil
	}
	r := round(float64(num)/float64(den), 6)
	return &r
}

func ptr[T any](v T) *T { return &v }

// WriteTable prints r as an aligned text table.
func (r Result) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "%s mode: %d validators (%d down, %d silent), %d full nodes, %d broadcasts, seed %d",
		r.Mode, r.Validators, r.DownValidators, r.SilentValidators, r.FullNodes, r.Broadcasts, r.Seed)
	if r.TimeBase != "" {
		fmt.Fprintf(w, ", %s time", r.TimeBase)
	}
	fmt.Fprint(w, "\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"strategy", "delivered", "validators", "fullnodes", "msgs/bcast", "dups/node"}
	if r.Mode == ModePlan {
		head = append(head, "hops mean", "hops max", "peers/val mean", "peers/val max")
	} else {
		head = append(head, "payload B/bcast", "wire B/bcast", "cover p50 ms", "p99 ms", "max ms", "val p50 ms", "val max ms")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, s := range r.Strategies {
		row := []string{
			s.Name, pct(s.DeliveryRatio), pct(s.ValidatorDeliveryRatio), pct(s.FullNodeDeliveryRatio),
			fmt.Sprintf("%.1f", s.PayloadMessagesPerBroadcast), fmt.Sprintf("%.2f", s.DuplicatesPerNode),
		}
		if r.Mode == ModePlan {
			if h := s.LastDeliveryHop; h != nil {
				row = append(row, fmt.Sprintf("%.2f", h.Mean), fmt.Sprint(h.Max))
			} else {
				row = append(row, "-", "-")
			}
			if p := s.RainTreePeersPerValidator; p != nil {
				row = append(row, fmt.Sprintf("%.2f", p.Mean), fmt.Sprint(p.Max))
			} else {
				row = append(row, "-", "-")
			}
		} else {
			row = append(row, num(s.PayloadBytesPerBroadcast, 0), num(s.WireBytesPerBroadcast, 0))
			row = append(row, quantileCells(s.CoverageMS, true)...)
			row = append(row, quantileCells(s.ValidatorCoverageMS, false)...)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	return tw.Flush()
}

func pct(r *float64) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", *r*100)
}

func num(v *float64, prec int) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, *v)
}

func quantileCells(q *Quantiles, withP99 bool) []string {
	if q == nil {
		if withP99 {
			return []string{"-", "-", "-"}
		}
		return []string{"-", "-"}
	}
	if withP99 {
		return []string{fmt.Sprintf("%.1f", q.P50), fmt.Sprintf("%.1f", q.P99), fmt.Sprintf("%.1f", q.Max)}
	}
	return []string{fmt.Sprintf("%.1f", q.P50), fmt.Sprintf("%.1f", q.Max)}
}
