package admin

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// Defaults used by DefaultConfig. They bound what one local client can hold:
// a slow or stalled client is cut off by the timeouts, and at most MaxConns
// connections are served at once (the rest wait in the kernel's backlog).
const (
	DefaultReadHeaderTimeout  = 5 * time.Second
	DefaultReadTimeout        = 30 * time.Second
	DefaultWriteTimeout       = 30 * time.Second
	DefaultIdleTimeout        = 60 * time.Second
	DefaultMaxConns           = 64
	DefaultStreamWriteTimeout = 10 * time.Second
	// DefaultSubscriberBytes bounds the bytes queued for one /v1/messages
	// subscriber; beyond it, deliveries are dropped for that subscriber and
	// counted.
	DefaultSubscriberBytes = 8 << 20
)

// Config bounds the admin server's resources and names its token.
type Config struct {
	// ReadHeaderTimeout bounds reading a request's headers. Default 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included, so a client
	// trickling a body cannot hold a connection. Default 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response. The event stream
	// (/v1/messages) replaces it with StreamWriteTimeout per event.
	// Default 30s.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request. Default 60s.
	IdleTimeout time.Duration
	// MaxConns caps connections served at once, event streams included.
	// Default 64.
	MaxConns int
	// StreamWriteTimeout bounds writing one event to a /v1/messages
	// subscriber; a subscriber that does not read is disconnected. Default 10s.
	StreamWriteTimeout time.Duration
	// Token, when not empty, is the bearer token every state-changing
	// request (any method but GET, HEAD and OPTIONS) must carry in
	// "Authorization: Bearer <token>". Read it with ReadToken.
	Token string
}

// DefaultConfig returns the documented defaults, with no token.
func DefaultConfig() Config {
	return Config{
		ReadHeaderTimeout:  DefaultReadHeaderTimeout,
		ReadTimeout:        DefaultReadTimeout,
		WriteTimeout:       DefaultWriteTimeout,
		IdleTimeout:        DefaultIdleTimeout,
		MaxConns:           DefaultMaxConns,
		StreamWriteTimeout: DefaultStreamWriteTimeout,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ReadHeaderTimeout", c.ReadHeaderTimeout}, {"ReadTimeout", c.ReadTimeout},
		{"WriteTimeout", c.WriteTimeout}, {"IdleTimeout", c.IdleTimeout},
		{"StreamWriteTimeout", c.StreamWriteTimeout},
	} {
		if d.v <= 0 {
			return fmt.Errorf("admin: %s %v must be positive", d.name, d.v)
		}
	}
	if c.MaxConns <= 0 {
		return fmt.Errorf("admin: MaxConns %d must be positive", c.MaxConns)
	}
	return nil
}

// ErrTokenFile reports an unusable token file.
var ErrTokenFile = errors.New("admin token file")

// ReadToken reads a bearer token from path. A missing file means no token
// (""); an empty file, or one that other users may read, is an error, since
// either would silently weaken the API's protection.
func ReadToken(path string) (string, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrTokenFile, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%w: %s has mode %v; make it private (chmod 600)", ErrTokenFile, path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrTokenFile, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("%w: %s must hold one non-empty token on one line", ErrTokenFile, path)
	}
	return tok, nil
}

// changesState reports whether a request with this method may change the
// node's state, and so needs the token. Deciding by method, not by route,
// covers every route added later.
func changesState(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// authorized reports whether r carries the token (constant-time compare).
func authorized(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1
}
