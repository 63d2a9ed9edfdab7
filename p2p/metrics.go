package p2p

import (
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/p2p/unicast"
)

// Stats is a snapshot of every counter the module and its routers keep.
type Stats struct {
	// Delivered counts envelopes handed to the application, by router.
	Delivered map[RouterName]uint64
	// Duplicates counts envelopes suppressed by the deduper.
	Duplicates uint64
	// TooOld and TooNew count envelopes the deduper refused as created outside the
	// replay window or at or below its floor (see package dedup).
	TooOld, TooNew uint64
	// DedupEvicted counts message IDs the deduper forgot early to stay
	// within Config.DedupCapacity; a copy arriving later is refused as
	// too old rather than delivered twice.
	DedupEvicted uint64
	// InvalidPeers counts protocol violations routers held against the
	// sending peer (Config.OnInvalidPeer).
	InvalidPeers uint64
	// SendErrors counts Send and Broadcast calls a router refused.
	SendErrors uint64
	// HandoverDialErrors counts a full node's failed dials to the
	// validators it hands its broadcasts to (Config.HandoverRedial).
	HandoverDialErrors uint64
	// RainTree is zero while this node is not a validator.
	RainTree   raintree.Stats
	Background background.Stats
	// RainTreeUnicast is the RainTree router's transport (zero for a full
	// node); the background one is in Background.Unicast.
	RainTreeUnicast unicast.Stats
	// RainTreeACKUnicast is the transport of RainTree's ACK protocol.
	RainTreeACKUnicast unicast.Stats
	// RainTreeProofUnicast is the transport of RainTree's proofs of
	// forwarding.
	RainTreeProofUnicast unicast.Stats
	// Resources is the resource manager's state (zero before Start).
	Resources ResourceStats
	// Conns is the connection manager's view, when it exposes one.
	Conns ConnManagerStats
}

// ConnManagerStats is what a go-libp2p BasicConnMgr reports.
type ConnManagerStats struct {
	Conns, LowWater, HighWater int
}

// Stats returns the current counters.
func (m *Module) Stats() Stats {
	m.mu.RLock()
	rain, bg, h := m.rain, m.bg, m.host
	m.mu.RUnlock()
	ds := m.dedup.Stats()
	s := Stats{
		Delivered: map[RouterName]uint64{
			RouterRainTree:   m.delivered[0].Load(),
			RouterBackground: m.delivered[1].Load(),
		},
		Duplicates:         ds.Duplicates,
		TooOld:             ds.TooOld,
		TooNew:             ds.TooNew,
		DedupEvicted:       ds.Evicted,
		InvalidPeers:       m.invalidPeers.Load(),
		SendErrors:         m.sendErrors.Load(),
		HandoverDialErrors: m.headDialErrors.Load(),
	}
	if rain != nil {
		s.RainTree = rain.Stats()
		s.RainTreeUnicast = rain.UnicastStats()
		s.RainTreeACKUnicast = rain.ACKUnicastStats()
		s.RainTreeProofUnicast = rain.ProofUnicastStats()
	}
	if bg != nil {
		s.Background = bg.Stats()
	}
	if h != nil {
		s.Resources = resourceStats(h.Network().ResourceManager(), m.cfg.NetworkID, &m.rc, m.allowlist)
		if cm, ok := h.ConnManager().(interface{ GetInfo() connmgr.CMInfo }); ok {
			info := cm.GetInfo()
			s.Conns = ConnManagerStats{Conns: info.ConnCount, LowWater: info.LowWater, HighWater: info.HighWater}
		}
	}
	return s
}

// collector exports Module.Stats to Prometheus at scrape time.
type collector struct{ m *Module }

// NewCollector returns a Prometheus collector over m's counters: messages
// sent, received, delivered and dropped per router and reason, duplicates
// suppressed, RainTree retries, peers and unicast bytes.
func NewCollector(m *Module) prometheus.Collector { return collector{m} }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("rainp2p_"+name, help, labels, nil)
}

var (
	sentDesc      = desc("messages_sent_total", "Messages sent, by router and kind.", "router", "kind")
	receivedDesc  = desc("messages_received_total", "Messages received from the network, by router and kind.", "router", "kind")
	deliveredDesc = desc("messages_delivered_total", "Envelopes delivered to the application, by router.", "router")
	droppedDesc   = desc("messages_dropped_total", "Messages dropped, by router and reason.", "router", "reason")
	dupDesc       = desc("duplicates_suppressed_total", "Envelopes suppressed by the message-ID deduper.")
	invalidDesc   = desc("invalid_peer_messages_total", "Protocol violations held against the sending peer, by router.", "router")
	retriesDesc   = desc("raintree_retries_total", "RainTree re-delegations after a missing ACK.")
	ackTODesc     = desc("raintree_ack_timeouts_total", "RainTree frames not acknowledged in time.")
	forwardDesc   = desc("raintree_forwarding_total", "RainTree forwarding checks of paced frames: not_forwarded (a head acknowledged but proved no forwarding in time; its span went on without it), proof_sent, proof_received (valid), proof_unexpected (late or duplicated), laggard_passed (a head that recently proved no forwarding got a frame of itself alone), slow_head (a head read a paced frame far slower than this node's frames usually go; its span went on without it).", "event")
	peersDesc     = desc("peers", "Connected peers per router.", "router")
	bytesDesc     = desc("unicast_bytes_total", "Unicast transport bytes, by router and direction.", "router", "direction")
	sendErrDesc   = desc("send_errors_total", "Send and Broadcast calls a router refused.")
	connsDesc     = desc("connections", "Connected peers by kind: raintree_neighbour, mesh (gossip), other.", "kind")
	penaltyDesc   = desc("penalties_total", "Penalties imposed on peers, by router and kind.", "router", "kind")
	resMemDesc    = desc("resource_memory_bytes", "Memory reserved in the libp2p resource manager, by scope (system, transient, unicast frames).", "scope")
	resConnsDesc  = desc("resource_conns", "Connections the resource manager holds, by direction.", "direction")
	resStrmDesc   = desc("resource_streams", "Streams the resource manager holds, by direction.", "direction")
	resBlockDesc  = desc("resource_blocked_total", "Resource-manager refusals, by resource.", "resource")
	allowDesc     = desc("resource_allowlisted_addrs", "Validator multiaddrs on the resource manager's allowlist.")
	grayDesc      = desc("gossip_graylisted_peers", "Peers below the gossipsub graylist threshold at the last score inspection.")
	lowScoreDesc  = desc("gossip_lowest_score", "Lowest gossipsub peer score at the last score inspection.")
	cmConnsDesc   = desc("connmgr_conns", "Connections the connection manager tracks, with its watermarks.", "kind")
	fwdDelayDesc  = desc("forward_delay_seconds", "The longest a full node of a lazy network now holds a small message before gossip forwards it: two round trips to its mesh's validators, within ForwardDelay and MaxForwardDelay (0 on validators).")
	discErrDesc   = desc("discovery_errors_total", "Failed discovery steps, by kind: bootstrap_dial (retried with backoff), discovery_round (a DHT round), discovered_dial (a peer a round found), handover_dial (a full node's dial to a validator it hands broadcasts to).", "kind")
	forgotDesc    = desc("records_forgotten_total", "Records dropped early to stay within their bound, by store: dedup (DedupCapacity), raintree_seen (RainTree's seen spans), unicast_strikes (MaxStrikeRecords, all transports), rate_limit_buckets (MaxRateLimitedPeers), gossip_catch_up (recent messages beyond pubsub's MaxIHaveLength, not advertised to a newly grafted peer), gossip_unwanted (peers' IDONTWANTs beyond UnwantedMemory).", "store")
	lazyDesc      = desc("lazy_gossip_total", "Lazy gossip events: republished (a RainTree delivery handed to gossip), submitted, share_sent (a full node's share of a broadcast handed over in parts, sent straight to its head), submit_returned, submit_fallback, submit_recipient_left (submissions due at once because a connection to the parent of a whole-ring submission closed), submit_unproven (a full node's blocks whose parent proved nothing in SubmitProofWait), resubmitted (of those, handed to the next parent), proof_accepted, proof_rejected (did not verify; the sender is penalised), proof_unexpected (for no block awaiting one), proof_sent (a validator's proofs to the full nodes whose blocks it started), proof_dropped (MaxProofQueue full, or the send failed), submit_error, submission_received, parts_relayed (ring parts of handovers a validator started), handover_refused (a full node's parts refused: not the origin's own, overlapping, or on a set not planned here; the whole ring is started instead if the message is new), pending_full, held (a full node held a message before forwarding it), held_full (forwarded without delay: MaxHeldBytes), released_early (held until every validator in the mesh had it, not the whole forward delay), signals_full (MaxHaveSignals), large_write_waited (a gossip write of a large message waited for another's turn, LargeWriteHold), large_write_overtook (it then went beside the others after the hold), copy_declined (a copy then left out: its peer had said IDONTWANT), iwant_held (message IDs left out of this node's IWANTs while a large frame was arriving, AskHold), busy_sent, busy_dropped (busy notices a full node sent its mesh peers, or did not: BusyHold), busy_heard (busy notices heard), busy_held (large gossip writes held for a busy peer), ask_sent, ask_cleared, ask_refused, ask_unanswered (this node's asks to send a large gossip write, and their answers: ClearWait), ask_muted (peers then not asked for a minute: no answer in time, or a slow one), clear_given, clear_refused, answer_dropped (this node's answers to asks).", "event")
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{sentDesc, receivedDesc, deliveredDesc, droppedDesc, dupDesc, invalidDesc, retriesDesc, ackTODesc, peersDesc, bytesDesc, sendErrDesc,
		penaltyDesc, grayDesc, lowScoreDesc, resMemDesc, resConnsDesc, resStrmDesc, resBlockDesc, allowDesc, cmConnsDesc, connsDesc, lazyDesc, fwdDelayDesc, forwardDesc, forgotDesc, discErrDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.Stats()
	st := c.m.Status()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	rt, bg := string(RouterRainTree), string(RouterBackground)
	r, b := s.RainTree, s.Background

	counter(sentDesc, r.TreeSent, rt, "broadcast")
	counter(sentDesc, r.RedundantSent, rt, "redundant")
	counter(sentDesc, r.UnicastSent, rt, "unicast")
	counter(sentDesc, r.AcksSent, rt, "ack")
	counter(sentDesc, b.Published, bg, "broadcast")
	counter(sentDesc, b.Unicast.FramesSent, bg, "unicast")
	counter(receivedDesc, r.TreeReceived, rt, "broadcast")
	counter(receivedDesc, r.RedundantReceived, rt, "redundant")
	counter(receivedDesc, r.UnicastReceived, rt, "unicast")
	counter(receivedDesc, r.AcksReceived, rt, "ack")
	counter(receivedDesc, b.DeliveredGossip, bg, "broadcast")
	counter(receivedDesc, b.DeliveredUnicast, bg, "unicast")
	counter(deliveredDesc, s.Delivered[RouterRainTree], rt)
	counter(deliveredDesc, s.Delivered[RouterBackground], bg)

	drops := []struct {
		router, reason string
		v              uint64
	}{
		{rt, "malformed", r.Dropped.Malformed},
		{rt, "bad_signature", r.Dropped.BadSignature},
		{rt, "stale", r.Dropped.Stale},
		{rt, "inbound_full", r.Dropped.InboundFull},
		{rt, "outbound_full", r.Dropped.OutboundFull},
		{rt, "delivery_full", r.Dropped.DeliveryFull},
		{rt, "ack_queue_full", r.Dropped.ACKQueueFull},
		{rt, "too_large", r.Dropped.TooLarge},
		{rt, "unknown_sender", r.Dropped.UnknownSender},
		{rt, "unknown_set", r.Dropped.UnknownSet},
		{rt, "bad_receipt", r.Dropped.BadReceipt},
		{rt, "gave_up", r.GaveUp},
		{rt, "send_error", r.SendErrors},
		{rt, "oversize_in", s.RainTreeUnicast.DroppedOversizeIn},
		{bg, "malformed", b.GossipRejected.Malformed + b.UnicastRejected.Malformed},
		{bg, "too_large", b.GossipRejected.TooLarge + b.UnicastRejected.TooLarge},
		{bg, "empty", b.GossipRejected.Empty + b.UnicastRejected.Empty},
		{bg, "invalid_envelope", b.GossipRejected.InvalidEnvelope + b.UnicastRejected.InvalidEnvelope},
		{bg, "signature", b.GossipRejected.Signature + b.UnicastRejected.Signature},
		{bg, "stale", b.GossipStale},
		{bg, "subscription_full", b.DroppedSubscriptionFull},
		{bg, "validation_queue_full", b.DroppedValidation},
		{bg, "outbound_queue_full", b.DroppedOutbound},
		{bg, "oversize_in", b.Unicast.DroppedOversizeIn},
		{bg, "rate_limited", b.DroppedRateLimited},
		{"module", "too_old", s.TooOld},
		{"module", "too_new", s.TooNew},
	}
	for _, d := range drops {
		counter(droppedDesc, d.v, d.router, d.reason)
	}
	for _, e := range []struct {
		event string
		v     uint64
	}{
		{"republished", b.Republished}, {"submitted", b.Submitted}, {"submit_returned", b.SubmitReturned},
		{"submit_fallback", b.SubmitFallbacks}, {"submit_recipient_left", b.SubmitRecipientLeft},
		{"submit_unproven", b.SubmitUnproven}, {"resubmitted", b.Resubmitted}, {"proof_accepted", b.ProofsAccepted},
		{"proof_rejected", b.ProofsRejected}, {"proof_unexpected", b.ProofsUnexpected}, {"proof_sent", b.ProofsSent},
		{"proof_dropped", b.ProofsDropped}, {"submit_error", b.SubmitErrors}, {"submission_received", b.Submissions},
		{"pending_full", b.PendingFull}, {"held", b.Held}, {"held_full", b.HeldFull},
		{"released_early", b.ReleasedEarly}, {"signals_full", b.SignalsFull}, {"share_sent", b.SharesSent},
		{"parts_relayed", s.RainTree.PartsRelayed}, {"handover_refused", s.RainTree.HandoversRefused},
		{"large_write_waited", b.LargeWritesWaited}, {"large_write_overtook", b.LargeWritesOvertook}, {"copy_declined", b.CopiesDeclined}, {"iwant_held", b.IWantsHeld},
		{"busy_sent", b.BusyNoticesSent}, {"busy_dropped", b.BusyNoticesDropped}, {"busy_heard", b.BusyNoticesHeard}, {"busy_held", b.LargeWritesHeldBusy},
		{"ask_sent", b.AsksSent}, {"ask_cleared", b.AsksCleared}, {"ask_refused", b.AsksRefused}, {"ask_unanswered", b.AsksUnanswered}, {"ask_muted", b.AsksMuted},
		{"clear_given", b.ClearancesGiven}, {"clear_refused", b.ClearancesRefused}, {"answer_dropped", b.AnswersDropped},
		{"repair_sent", b.RepairsSent}, {"repair_error", b.RepairErrors}, {"repair_skipped", b.RepairsSkipped}, {"repair_taken", b.RepairsTaken}, {"repair_refused", b.RepairsRefused},
	} {
		counter(lazyDesc, e.v, e.event)
	}
	ch <- prometheus.MustNewConstMetric(fwdDelayDesc, prometheus.GaugeValue, b.ForwardDelay.Seconds())
	counter(dupDesc, s.Duplicates)
	counter(invalidDesc, s.InvalidPeers, rt)
	counter(retriesDesc, r.Retries)
	counter(ackTODesc, r.AckTimeouts)
	counter(forwardDesc, r.NotForwarded, "not_forwarded")
	counter(forwardDesc, r.ProofsSent, "proof_sent")
	counter(forwardDesc, r.ProofsReceived, "proof_received")
	counter(forwardDesc, r.ProofsUnexpected, "proof_unexpected")
	counter(forwardDesc, r.SkippedLaggards, "laggard_passed")
	counter(forwardDesc, r.SlowHeads, "slow_head")
	counter(sendErrDesc, s.SendErrors)
	for _, name := range []string{rt, bg} {
		ch <- prometheus.MustNewConstMetric(peersDesc, prometheus.GaugeValue, float64(st.Peers[name]), name)
	}
	for _, kind := range []string{ConnRainTreeNeighbour, ConnMesh, ConnOther} {
		ch <- prometheus.MustNewConstMetric(connsDesc, prometheus.GaugeValue, float64(st.Connections[kind]), kind)
	}
	counter(bytesDesc, s.RainTreeUnicast.BytesSent, rt, "sent")
	counter(bytesDesc, s.RainTreeUnicast.BytesReceived, rt, "received")
	counter(bytesDesc, b.Unicast.BytesSent, bg, "sent")
	counter(bytesDesc, b.Unicast.BytesReceived, bg, "received")
	collectPenalties(ch, s)
	collectForgotten(ch, s)
	counter(discErrDesc, b.BootstrapDialErrors, "bootstrap_dial")
	counter(discErrDesc, b.DiscoveryErrors, "discovery_round")
	counter(discErrDesc, b.DiscoveredDialErrors, "discovered_dial")
	counter(discErrDesc, s.HandoverDialErrors, "handover_dial")
	collectResources(ch, s)
}

func collectForgotten(ch chan<- prometheus.Metric, s Stats) {
	strikes := s.RainTreeUnicast.StrikesForgotten + s.RainTreeACKUnicast.StrikesForgotten +
		s.RainTreeProofUnicast.StrikesForgotten + s.Background.Unicast.StrikesForgotten
	for _, f := range []struct {
		store string
		v     uint64
	}{
		{"dedup", s.DedupEvicted}, {"raintree_seen", s.RainTree.SeenEvicted},
		{"unicast_strikes", strikes}, {"rate_limit_buckets", s.Background.RateLimitForgotten},
		{"gossip_catch_up", s.Background.CatchUpForgotten}, {"gossip_unwanted", s.Background.UnwantedForgotten},
	} {
		ch <- prometheus.MustNewConstMetric(forgotDesc, prometheus.CounterValue, float64(f.v), f.store)
	}
}

func collectPenalties(ch chan<- prometheus.Metric, s Stats) {
	counter := func(v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(penaltyDesc, prometheus.CounterValue, float64(v), labels...)
	}
	for _, u := range []struct {
		router string
		st     unicast.Stats
	}{{string(RouterRainTree), s.RainTreeUnicast}, {"raintree_ack", s.RainTreeACKUnicast}, {"raintree_proof", s.RainTreeProofUnicast}, {string(RouterBackground), s.Background.Unicast}} {
		counter(u.st.Strikes, u.router, "unicast_strike")
		counter(u.st.FrameTimeouts, u.router, "unicast_frame_timeout")
		counter(u.st.DroppedNoMemory, u.router, "unicast_no_memory")
		counter(u.st.PeersDisconnected, u.router, "unicast_disconnect")
	}
	bg := s.Background
	counter(bg.ScoreDisconnects, string(RouterBackground), "gossip_graylist_disconnect")
	counter(bg.DroppedRateLimited, string(RouterBackground), "direct_rate_limited")
	counter(bg.ThrottledRPCs, string(RouterBackground), "gossip_throttled_rpc")
	ch <- prometheus.MustNewConstMetric(grayDesc, prometheus.GaugeValue, float64(bg.Graylisted))
	ch <- prometheus.MustNewConstMetric(lowScoreDesc, prometheus.GaugeValue, bg.LowestScore)
}

func collectResources(ch chan<- prometheus.Metric, s Stats) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	r := s.Resources
	gauge(resMemDesc, float64(r.SystemMemory), "system")
	gauge(resMemDesc, float64(r.TransientMemory), "transient")
	gauge(resMemDesc, float64(r.UnicastMemory), "unicast_frames")
	gauge(resConnsDesc, float64(r.ConnsInbound), "inbound")
	gauge(resConnsDesc, float64(r.ConnsOutbound), "outbound")
	gauge(resStrmDesc, float64(r.StreamsInbound), "inbound")
	gauge(resStrmDesc, float64(r.StreamsOutbound), "outbound")
	for _, b := range []struct {
		name string
		v    uint64
	}{{"conn", r.BlockedConns}, {"stream", r.BlockedStreams}, {"peer", r.BlockedPeers}, {"protocol", r.BlockedProtocols}, {"service", r.BlockedServices}, {"memory", r.BlockedMemory}} {
		ch <- prometheus.MustNewConstMetric(resBlockDesc, prometheus.CounterValue, float64(b.v), b.name)
	}
	gauge(allowDesc, float64(r.Allowlisted))
	gauge(cmConnsDesc, float64(s.Conns.Conns), "conns")
	gauge(cmConnsDesc, float64(s.Conns.LowWater), "low_water")
	gauge(cmConnsDesc, float64(s.Conns.HighWater), "high_water")
}
