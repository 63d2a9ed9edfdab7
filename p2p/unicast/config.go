package unicast

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// Defaults used by DefaultConfig.
const (
	DefaultMaxMessageSize = 4 << 20
	DefaultWriteTimeout   = 10 * time.Second
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultDialTimeout    = 10 * time.Second
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
	// Logger receives stream lifecycle and drop events. nil means
	// slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a complete Config for the given protocol.
func DefaultConfig(id protocol.ID) Config {
	return Config{
		ProtocolID:     id,
		MaxMessageSize: DefaultMaxMessageSize,
		WriteTimeout:   DefaultWriteTimeout,
		IdleTimeout:    DefaultIdleTimeout,
		DialTimeout:    DefaultDialTimeout,
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
	}
	return nil
}
