package background

import (
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// graftCatchUp closes a delivery gap gossipsub leaves around a new mesh
// link.
//
// Gossipsub forwards a message only to its mesh peers, and advertises it
// (IHAVE) at heartbeats only to topic peers outside the mesh. A peer whose
// subscription has just arrived is in neither set when a message passes
// through: it joins the mesh at the next heartbeat (or when it grafts us),
// and from then on it is excluded from gossip. While the topic has fewer
// peers than Dlo every topic peer is grafted, so such a message never
// reaches that peer at all, although it was known to be subscribed before
// the message arrived.
//
// graftCatchUp therefore sends an IHAVE for the messages of the gossip
// window to every peer at the moment it is added to our mesh, on either
// side of the link. The peer asks (IWANT) for the ones it has not seen and
// pubsub answers from its message cache, exactly as for ordinary gossip,
// so the messages arrive on the normal path, validated and deduplicated.
//
// Both hooks are RawTracer callbacks, which pubsub invokes synchronously on
// its event loop: that is what makes calling the router's SendControl from
// onGraft safe, since the router's state is only touched from that loop.
type graftCatchUp struct {
	rt    *pubsub.GossipSubRouter
	topic string
	// window is how long a delivered message is advertised. It stays
	// inside the message cache's lifetime so every advertised message can
	// still be served when the IWANT comes back.
	window time.Duration
	// limit caps the IDs in one IHAVE at what the receiver accepts
	// (pubsub's MaxIHaveLength); older ones are forgotten, counted in
	// forgotten.
	limit     int
	now       func() time.Time
	forgotten *atomic.Uint64

	mu     sync.Mutex
	recent []recentMessage // oldest first
}

type recentMessage struct {
	id   string
	from peer.ID // the neighbour it came from; empty for our own
	at   time.Time
}

func newGraftCatchUp(rt *pubsub.GossipSubRouter, topic string, p pubsub.GossipSubParams, forgotten *atomic.Uint64) *graftCatchUp {
	// The cache drops a message after HistoryLength heartbeat shifts, the
	// first of which can come right after it was stored, so only
	// HistoryLength-1 intervals are guaranteed. HistoryGossip is how far
	// back gossipsub's own IHAVEs reach.
	windows := min(p.HistoryGossip, p.HistoryLength-1)
	return &graftCatchUp{
		rt:        rt,
		topic:     topic,
		window:    time.Duration(windows) * p.HeartbeatInterval,
		limit:     p.MaxIHaveLength,
		now:       time.Now,
		forgotten: forgotten,
	}
}

// onDeliver records a message that has just entered the message cache.
// Pubsub reports a message as delivered once, right before caching it
// for forwarding, and reports neither ignored nor rejected messages. It
// never reports our own publications to raw tracers: see onPublish.
func (g *graftCatchUp) onDeliver(msg *pubsub.Message) {
	if msg.GetTopic() != g.topic {
		return
	}
	id := msg.ID // pubsub sets it before a message is delivered
	if id == "" {
		return
	}
	g.record(id, msg.ReceivedFrom)
}

// onPublish records one of our own publications, given its gossip ID. It is
// called just before publishing: a peer grafted in between is told about a
// message that may not be cached yet, which costs it an unanswered IWANT,
// while recording after publishing could miss a peer grafted in between
// for good. Without flood publishing this is how a peer that joins our
// mesh right after we publish still gets the message.
func (g *graftCatchUp) onPublish(id string) {
	if g == nil {
		return
	}
	g.record(id, "")
}

func (g *graftCatchUp) record(id string, from peer.ID) {
	if g.window <= 0 || g.limit <= 0 {
		return
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expireLocked(now)
	if len(g.recent) >= g.limit {
		g.recent = g.recent[1:]
		g.forgotten.Add(1)
	}
	g.recent = append(g.recent, recentMessage{id: id, from: from, at: now})
}

// onGraft advertises the recent messages to a peer that is joining our
// mesh for the topic.
func (g *graftCatchUp) onGraft(p peer.ID, topic string) {
	if topic != g.topic {
		return
	}
	ids := g.idsFor(p)
	if len(ids) == 0 {
		return
	}
	g.rt.SendControl(p, &pb.ControlMessage{
		Ihave: []*pb.ControlIHave{{TopicID: &g.topic, MessageIDs: ids}},
	})
}

// idsFor lists the messages p may lack: recent ones it did not send us.
func (g *graftCatchUp) idsFor(p peer.ID) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expireLocked(g.now())
	var ids []string
	for _, m := range g.recent {
		if m.from != p {
			ids = append(ids, m.id)
		}
	}
	return ids
}

func (g *graftCatchUp) expireLocked(now time.Time) {
	i := 0
	for i < len(g.recent) && now.Sub(g.recent[i].at) >= g.window {
		i++
	}
	if i > 0 {
		g.recent = append(g.recent[:0], g.recent[i:]...)
	}
}
