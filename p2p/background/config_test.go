package background

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

func TestParsePubSubKind(t *testing.T) {
	tests := []struct {
		in      string
		want    PubSubKind
		wantErr bool
	}{
		{"", GossipSub, false},
		{"gossipsub", GossipSub, false},
		{" RandomSub ", RandomSub, false},
		{"floodsub", FloodSub, false},
		{"meshsub", "", true},
	}
	for _, tt := range tests {
		got, err := ParsePubSubKind(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParsePubSubKind(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		errHas string
	}{
		{"the default config is valid", func(*Config) {}, ""},
		{"a network id is required", func(c *Config) { c.NetworkID = "" }, "NetworkID"},
		{"a network id cannot contain a slash", func(c *Config) { c.NetworkID = "a/b" }, "NetworkID"},
		{"an unknown pubsub kind is refused", func(c *Config) { c.PubSub = "meshsub" }, "unknown pubsub"},
		{"the max message size must be positive", func(c *Config) { c.MaxMessageSize = 0 }, "MaxMessageSize"},
		{"the subscription buffer must be positive", func(c *Config) { c.SubscriptionBuffer = 0 }, "SubscriptionBuffer"},
		{"the validation queue must be positive", func(c *Config) { c.ValidateQueueSize = 0 }, "ValidateQueueSize"},
		{"the outbound queue must be positive", func(c *Config) { c.PeerOutboundQueueSize = -1 }, "PeerOutboundQueueSize"},
		{"the advertise interval must be positive", func(c *Config) { c.AdvertiseInterval = 0 }, "AdvertiseInterval"},
		{"rate-limit buckets must be kept for some peers", func(c *Config) { c.MaxRateLimitedPeers = 0 }, "MaxRateLimitedPeers"},
		{"mesh degrees must be ordered", func(c *Config) { c.Gossip.Dlo = 9 }, "Dlo"},
		{"history gossip cannot exceed history", func(c *Config) { c.Gossip.HistoryGossip = 7 }, "HistoryGossip"},
		{"gossip params do not matter for floodsub", func(c *Config) { c.PubSub = FloodSub; c.Gossip = GossipParams{} }, ""},
		{"randomsub needs a size hint", func(c *Config) { c.PubSub = RandomSub; c.RandomSubSize = 0 }, "RandomSubSize"},
		{"a unicast limit below the envelope limit is refused", func(c *Config) { c.Unicast.MaxMessageSize = c.MaxMessageSize }, "Unicast.MaxMessageSize"},
		{"the unicast protocol is required", func(c *Config) { c.Unicast.ProtocolID = "" }, "ProtocolID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig("net")
			tt.modify(&c)
			err := c.Validate()
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("got %v, want an error about %s", err, tt.errHas)
			}
		})
	}
}

func TestDerivedGossipSubParamsAreAcceptedByPubSub(t *testing.T) {
	for _, g := range []GossipParams{
		DefaultGossipParams(),
		{D: 2, Dlo: 1, Dhi: 2, Dlazy: 0, HeartbeatInterval: 1, HistoryLength: 1, HistoryGossip: 1},
		{D: 3, Dlo: 2, Dhi: 4, Dlazy: 2, HeartbeatInterval: 1, HistoryLength: 3, HistoryGossip: 2},
	} {
		cfg := testConfig("params")
		cfg.Gossip = g
		n := startNode(t, cfg)
		if err := n.r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNamesArePerNetwork(t *testing.T) {
	if TopicName("a") == TopicName("b") || DHTProtocolPrefix("a") == DHTProtocolPrefix("b") || UnicastProtocolID("a") == UnicastProtocolID("b") {
		t.Fatal("two networks share a name")
	}
	if got := DefaultConfig("a").Unicast.ProtocolID; got != UnicastProtocolID("a") {
		t.Fatalf("default unicast protocol %q", got)
	}
}

func TestLifecycle(t *testing.T) {
	h := newHost(t)
	r, err := New(h, testConfig("life"), (&inbox{}).handle)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close before Start: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := r.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: got %v", err)
	}
	if err := r.Send(context.Background(), h.ID(), signed(t, h.Peerstore().PrivKey(h.ID()), "life", "x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: got %v", err)
	}
	if peers := r.TopicPeers(); peers != nil {
		t.Fatalf("TopicPeers after Close: %v", peers)
	}
	r.AddBootstrapPeers(nil) // no effect, no panic

	cfg := testConfig("life")
	cfg.DHT = true
	n := startNode(t, cfg)
	if err := n.r.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	for range 2 {
		if err := n.r.Close(); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r2, err := New(newHost(t), testConfig("life"), (&inbox{}).handle)
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a cancelled context: got %v", err)
	}
	_ = r2.Close()
}

func TestNewRefusesBadArguments(t *testing.T) {
	h := newHost(t)
	if _, err := New(nil, testConfig("x"), (&inbox{}).handle); err == nil {
		t.Error("nil host accepted")
	}
	if _, err := New(h, testConfig("x"), nil); err == nil {
		t.Error("nil handler accepted")
	}
	if _, err := New(h, Config{}, (&inbox{}).handle); err == nil {
		t.Error("empty config accepted")
	}
}

func TestNewRunsTheCanonicalPubSubKind(t *testing.T) {
	h := newHost(t, libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	cfg := testConfig("kind")
	cfg.PubSub = " FloodSub "
	r, err := New(h, cfg, func(peer.ID, *wire.Message, Via, wire.Handover) {})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.cfg.PubSub != FloodSub {
		t.Fatalf("runs %q, want %q", r.cfg.PubSub, FloodSub)
	}
}

// The stock parameters are exactly pubsub's defaults once derived, so the
// simulator's gossipsub baseline is the library's own configuration.
func TestStockGossipParamsArePubSubDefaults(t *testing.T) {
	if got, want := gossipSubParams(StockGossipParams()), pubsub.DefaultGossipSubParams(); !reflect.DeepEqual(got, want) {
		t.Errorf("stock params derive to\n%+v\nwant pubsub's defaults\n%+v", got, want)
	}
	if !StockGossipParams().FloodPublish {
		t.Error("stock params without flood publishing: a publish before the first heartbeat reaches nobody")
	}
}
