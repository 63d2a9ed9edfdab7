package background

import (
	"errors"
	"fmt"
	"math"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ScoreParams configure gossipsub v1.1 peer scoring on the background
// topic (GossipSub only). Each node scores the peers it hears from; a
// peer's score falls when it forwards messages our validator rejects, and
// a peer below GraylistThreshold has its RPCs ignored and, with
// DisconnectGraylisted, its connections closed. A stock gossipsub peer that
// forwards only valid messages never loses score.
//
// The mesh-delivery penalties (P3, P3b) are off: RainTree delivers most
// messages before gossip does, and validators will gossip lazily, so an
// honest mesh peer often delivers few "first" copies and must not be
// punished for it. First deliveries (P2) earn a small positive score.
type ScoreParams struct {
	// Disabled turns scoring off (comparison runs only).
	Disabled bool
	// InvalidMessageWeight is P4's weight: a peer whose invalid-message
	// counter is c scores InvalidMessageWeight·c². Default -100, so the
	// 6th invalid message in a short time crosses the default graylist
	// threshold.
	InvalidMessageWeight float64
	// InvalidMessageDecay multiplies that counter every second. Default
	// 0.99 (half-life about 70 s): 5,000 invalid messages keep a peer
	// graylisted for about 10 minutes.
	InvalidMessageDecay float64
	// Thresholds, all negative and in this order: below GossipThreshold a
	// peer gets no gossip (IHAVE/IWANT) from us, below PublishThreshold no
	// flood-published messages, below GraylistThreshold its RPCs are
	// ignored. Default -500, -1000, -2500.
	GossipThreshold, PublishThreshold, GraylistThreshold float64
	// DisconnectGraylisted closes the connections of a peer found below
	// GraylistThreshold, checked every heartbeat. Its score is retained
	// for RetainScore, so reconnecting does not clear it. Default true.
	DisconnectGraylisted bool
	// RetainScore keeps a disconnected peer's score. Default 10m.
	RetainScore time.Duration
	// PeerGater enables pubsub's peer gater, which throttles validation
	// of peers with many invalid or ignored messages when validation is
	// under pressure. Default false: validation here is inline and cheap,
	// and the gater also counts duplicates, which are most gossip copies
	// of messages RainTree delivered first.
	PeerGater bool
}

// DefaultScoreParams returns the documented defaults.
func DefaultScoreParams() ScoreParams {
	return ScoreParams{
		InvalidMessageWeight: -100,
		InvalidMessageDecay:  0.99,
		GossipThreshold:      -500,
		PublishThreshold:     -1000,
		GraylistThreshold:    -2500,
		DisconnectGraylisted: true,
		RetainScore:          10 * time.Minute,
	}
}

func (s ScoreParams) validate() error {
	switch {
	case s.Disabled:
		return nil
	case s.InvalidMessageWeight >= 0 || math.IsNaN(s.InvalidMessageWeight) || math.IsInf(s.InvalidMessageWeight, 0):
		return fmt.Errorf("InvalidMessageWeight %v must be negative", s.InvalidMessageWeight)
	case !(s.InvalidMessageDecay > 0 && s.InvalidMessageDecay < 1):
		return fmt.Errorf("InvalidMessageDecay %v must be in (0, 1)", s.InvalidMessageDecay)
	case !(s.GossipThreshold < 0 && s.PublishThreshold <= s.GossipThreshold && s.GraylistThreshold <= s.PublishThreshold):
		return fmt.Errorf("want GraylistThreshold <= PublishThreshold <= GossipThreshold < 0, have %v, %v, %v",
			s.GraylistThreshold, s.PublishThreshold, s.GossipThreshold)
	case s.RetainScore < 0:
		return errors.New("RetainScore must not be negative")
	}
	return nil
}

// Fixed parts of the score: small positive rewards for first deliveries
// (P2), and the behaviour penalty (P7) for protocol abuse such as grafting
// during a backoff or not answering IWANTs.
const (
	scoreDecayInterval       = time.Second
	scoreDecayToZero         = 0.01
	firstDeliveriesWeight    = 0.5
	firstDeliveriesDecay     = 0.9
	firstDeliveriesCap       = 50
	behaviourPenaltyWeight   = -10
	behaviourPenaltyDecay    = 0.9
	behaviourPenaltyFree     = 6
	acceptPXThreshold        = 10
	opportunisticGraftThresh = 2
)

// peerScore builds pubsub's parameters for topic.
func (s ScoreParams) peerScore(topic string) (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	params := &pubsub.PeerScoreParams{
		Topics: map[string]*pubsub.TopicScoreParams{topic: {
			TopicWeight:                    1,
			TimeInMeshQuantum:              time.Second, // P1 off (weight 0)
			FirstMessageDeliveriesWeight:   firstDeliveriesWeight,
			FirstMessageDeliveriesDecay:    firstDeliveriesDecay,
			FirstMessageDeliveriesCap:      firstDeliveriesCap,
			InvalidMessageDeliveriesWeight: s.InvalidMessageWeight,
			InvalidMessageDeliveriesDecay:  s.InvalidMessageDecay,
			// P3 and P3b stay at weight 0: see ScoreParams.
		}},
		// P5 is how validators keep each other out of their meshes
		// (lazy.go); the Router sets the function.
		AppSpecificScore:  func(peer.ID) float64 { return 0 },
		AppSpecificWeight: 1,
		// IP colocation (P6) is off: validators may share an address
		// (localnet, hosting), and the resource manager already bounds
		// connections per IP.
		BehaviourPenaltyWeight:    behaviourPenaltyWeight,
		BehaviourPenaltyThreshold: behaviourPenaltyFree,
		BehaviourPenaltyDecay:     behaviourPenaltyDecay,
		DecayInterval:             scoreDecayInterval,
		DecayToZero:               scoreDecayToZero,
		RetainScore:               s.RetainScore,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:             s.GossipThreshold,
		PublishThreshold:            s.PublishThreshold,
		GraylistThreshold:           s.GraylistThreshold,
		AcceptPXThreshold:           acceptPXThreshold,
		OpportunisticGraftThreshold: opportunisticGraftThresh,
	}
	return params, thresholds
}

// scoreOptions are the pubsub options for scoring, for GossipSub. Lazy
// gossip among validators needs the application score even when scoring is
// disabled; it then runs alone.
func (r *Router) scoreOptions() []pubsub.Option {
	s := r.cfg.Scoring
	if s.Disabled {
		return r.lazyOnlyScoreOptions()
	}
	params, thresholds := s.peerScore(r.topicName)
	params.AppSpecificScore = r.appScore
	opts := []pubsub.Option{
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(r.inspectScores), r.cfg.Gossip.HeartbeatInterval),
	}
	if s.PeerGater {
		opts = append(opts, pubsub.WithPeerGater(pubsub.DefaultPeerGaterParams()))
	}
	return opts
}

// inspectScores runs on a goroutine pubsub starts every heartbeat. It only
// records and hands over: disconnecting happens on the Router's own loop.
func (r *Router) inspectScores(scores map[peer.ID]float64) {
	var gray []peer.ID
	lowest := 0.0
	for p, sc := range scores {
		lowest = min(lowest, sc)
		if sc < r.cfg.Scoring.GraylistThreshold {
			gray = append(gray, p)
		}
	}
	r.c.graylisted.Store(uint64(len(gray)))
	r.c.lowestScore.Store(math.Float64bits(lowest))
	r.scoresMu.Lock()
	r.scores = scores
	r.scoresMu.Unlock()
	if len(gray) == 0 || !r.cfg.Scoring.DisconnectGraylisted {
		return
	}
	select {
	case r.graylist <- gray:
	default: // the previous list is still being handled; the next heartbeat repeats
	}
}

// disconnectLoop closes the connections of graylisted peers.
func (r *Router) disconnectLoop() {
	for {
		select {
		case <-r.ctx.Done():
			return
		case gray := <-r.graylist:
			for _, p := range gray {
				if len(r.host.Network().ConnsToPeer(p)) == 0 {
					continue
				}
				r.c.scoreDisconnects.Add(1)
				r.log.Warn("closing connections to graylisted peer", "peer", p)
				_ = r.host.Network().ClosePeer(p)
			}
		}
	}
}

// Score returns the last gossipsub score computed for p, and whether one
// was (scores are refreshed every heartbeat).
func (r *Router) Score(p peer.ID) (float64, bool) {
	r.scoresMu.Lock()
	defer r.scoresMu.Unlock()
	sc, ok := r.scores[p]
	return sc, ok
}
