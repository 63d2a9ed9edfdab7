package unicast

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Defaults used by DefaultConfig.
const (
	DefaultMaxMessageSize = 4 << 20
	DefaultWriteTimeout   = 10 * time.Second
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultDialTimeout    = 10 * time.Second
	// DefaultFrameTimeout lets a 4 MiB frame arrive at 200 KiB/s.
	DefaultFrameTimeout    = 20 * time.Second
	DefaultMalformedLimit  = 3
	DefaultMalformedWindow = 10 * time.Minute
	// DefaultMaxStrikeRecords is how many peers' strikes are remembered.
	DefaultMaxStrikeRecords = 4096
)

// Config configures a Router. Start from DefaultConfig: Validate rejects
// zero limits rather than silently substituting defaults.
type Config struct {
	// ProtocolID is the libp2p protocol the Router sends on and handles.
	ProtocolID protocol.ID
	// MaxMessageSize bounds one message in both directions.
	// Default DefaultMaxMessageSize (4 MiB).
	MaxMessageSize int
	// WriteTimeout bounds writing one frame. Default 10s.
	WriteTimeout time.Duration
	// IdleTimeout is the read deadline on an inbound stream; a stream with
	// no frame for this long is reset and the sender reopens on its next
	// Send. Default 5m.
	IdleTimeout time.Duration
	// DialTimeout bounds dialing and opening a stream. Default 10s.
	DialTimeout time.Duration
	// FrameTimeout bounds receiving one frame, from its header to its last
	// byte, so a sender that declares a frame and stalls holds its memory
	// for at most this long (IdleTimeout only bounds the wait for a
	// header). Default 20s.
	FrameTimeout time.Duration
	// MalformedLimit is how many malformed frames (bad or oversized
	// header, empty frame, a frame not finished within FrameTimeout, or a
	// payload the handler reports with Penalize) a peer may send within
	// MalformedWindow. Each one resets its stream; the one that reaches
	// the limit also closes every connection to the peer. Default 3 in 10m.
	MalformedLimit  int
	MalformedWindow time.Duration
	// MaxStrikeRecords bounds the peers whose strikes are remembered;
	// beyond it the expired records go first, then arbitrary ones, counted
	// in Stats.StrikesForgotten. Default 4096.
	MaxStrikeRecords int
	// Trusted, when set, names peers (validators) whose frames may use the
	// whole of the resource manager's memory limits; other peers' frames
	// are refused once a scope is 40% full (network.ReservationPriorityLow),
	// so many untrusted peers cannot starve trusted ones of frame memory.
	Trusted func(peer.ID) bool
	// Logger receives stream lifecycle and drop events. nil means
	// slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a complete Config for the given protocol.
func DefaultConfig(id protocol.ID) Config {
	return Config{
		ProtocolID:       id,
		MaxMessageSize:   DefaultMaxMessageSize,
		WriteTimeout:     DefaultWriteTimeout,
		IdleTimeout:      DefaultIdleTimeout,
		DialTimeout:      DefaultDialTimeout,
		FrameTimeout:     DefaultFrameTimeout,
		MalformedLimit:   DefaultMalformedLimit,
		MalformedWindow:  DefaultMalformedWindow,
		MaxStrikeRecords: DefaultMaxStrikeRecords,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.ProtocolID == "":
		return errors.New("unicast: ProtocolID is empty")
	case c.MaxMessageSize <= 0:
		return fmt.Errorf("unicast: MaxMessageSize %d must be positive", c.MaxMessageSize)
	case c.WriteTimeout <= 0:
		return fmt.Errorf("unicast: WriteTimeout %v must be positive", c.WriteTimeout)
	case c.IdleTimeout <= 0:
		return fmt.Errorf("unicast: IdleTimeout %v must be positive", c.IdleTimeout)
	case c.DialTimeout <= 0:
		return fmt.Errorf("unicast: DialTimeout %v must be positive", c.DialTimeout)
	case c.FrameTimeout <= 0:
		return fmt.Errorf("unicast: FrameTimeout %v must be positive", c.FrameTimeout)
	case c.MalformedLimit <= 0:
		return fmt.Errorf("unicast: MalformedLimit %d must be positive", c.MalformedLimit)
	case c.MalformedWindow <= 0:
		return fmt.Errorf("unicast: MalformedWindow %v must be positive", c.MalformedWindow)
	case c.MaxStrikeRecords <= 0:
		return fmt.Errorf("unicast: MaxStrikeRecords %d must be positive", c.MaxStrikeRecords)
	}
	return nil
}
