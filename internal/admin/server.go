package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Node is what the API needs from a running module.
type Node interface {
	Broadcast(ctx context.Context, msg proto.Message) (*wire.Envelope, error)
	Send(ctx context.Context, addr identity.Address, msg proto.Message) (*wire.Envelope, error)
	Status() p2p.Status
	Peers() []p2p.PeerInfo
}

// ErrNotLoopback is returned for a listen address off the loopback range.
var ErrNotLoopback = errors.New("admin API must listen on a loopback address")

// DefaultAddr lets the system pick a free loopback port.
const DefaultAddr = "127.0.0.1:0"

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 8 << 20

// Listen opens a loopback listener on addr.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("admin address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if host == "localhost" {
		ip = net.IPv4(127, 0, 0, 1)
	}
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%w: %q", ErrNotLoopback, addr)
	}
	return net.Listen("tcp", addr)
}

// Server serves the admin API.
type Server struct {
	node   Node
	feed   *Feed
	reg    *prometheus.Registry
	log    *slog.Logger
	cfg    Config
	routes map[string]map[string]http.Handler // path -> method -> handler
	c      serverCounters
}

// Option adjusts a Server.
type Option func(*Server)

// WithConfig replaces DefaultConfig; Serve validates it.
func WithConfig(cfg Config) Option { return func(s *Server) { s.cfg = cfg } }

// NewServer wires the API over node, its delivery feed and a metrics
// registry, on which it also registers its own counters.
func NewServer(node Node, feed *Feed, reg *prometheus.Registry, log *slog.Logger, opts ...Option) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{node: node, feed: feed, reg: reg, log: log, cfg: DefaultConfig(), routes: map[string]map[string]http.Handler{}}
	for _, o := range opts {
		o(s)
	}
	if reg != nil {
		_ = reg.Register(serverCollector{s}) // already registered by an earlier Server: keep that one
	}
	s.handle(http.MethodPost, "/v1/broadcast", http.HandlerFunc(s.broadcast))
	s.handle(http.MethodPost, "/v1/send", http.HandlerFunc(s.send))
	s.handle(http.MethodGet, "/v1/status", http.HandlerFunc(s.status))
	s.handle(http.MethodGet, "/v1/peers", http.HandlerFunc(s.peers))
	s.handle(http.MethodGet, "/v1/messages", http.HandlerFunc(s.messages))
	s.handle(http.MethodGet, "/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return s
}

// Handle adds a route. Requests with a state-changing method (anything but
// GET, HEAD, OPTIONS) go through the same checks as the built-in routes,
// the bearer token included. Call it before Serve.
func (s *Server) Handle(method, path string, h http.Handler) { s.handle(method, path, h) }

func (s *Server) handle(method, path string, h http.Handler) {
	if s.routes[path] == nil {
		s.routes[path] = map[string]http.Handler{}
	}
	s.routes[path][method] = h
}

// Handler returns the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s }

// ServeHTTP checks that the request comes from this machine and routes it.
// Requests naming a non-loopback Host (DNS rebinding) or carrying a
// non-loopback Origin (a cross-site page) are refused with 403.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !isLoopbackHost(r.Host) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("host %q is not a loopback address; the admin API only answers requests to 127.0.0.1, localhost or [::1]", r.Host))
		return
	}
	if o := r.Header.Get("Origin"); o != "" && !isLoopbackOrigin(o) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("origin %q is not a loopback origin; cross-site requests are refused", o))
		return
	}
	methods, ok := s.routes[r.URL.Path]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
		return
	}
	h, ok := methods[r.Method]
	if !ok {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		slices.Sort(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: method not allowed (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
		return
	}
	if s.cfg.Token != "" && changesState(r.Method) && !authorized(r, s.cfg.Token) {
		s.c.unauthorized.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="rainp2p-admin"`)
		writeError(w, http.StatusUnauthorized, fmt.Sprintf("%s %s changes state and needs \"Authorization: Bearer <token>\" with the token from the node's home", r.Method, r.URL.Path))
		return
	}
	h.ServeHTTP(w, r)
}

// isLoopbackHost reports whether a Host header names a loopback host
// (localhost or a loopback IP literal), with or without a port.
func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isLoopbackOrigin reports whether an Origin header is http:// on a loopback
// host, any port.
func isLoopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return false
	}
	return isLoopbackHost(u.Host)
}

// Serve serves on ln until ctx ends, then shuts down gracefully. At most
// Config.MaxConns connections are served at once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	ln = newLimitListener(ln, s.cfg.MaxConns, &s.c.connsCapped)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutCtx)
	if err != nil {
		_ = srv.Close()
	}
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && e != nil {
		return e
	}
	return err
}

type sendRequest struct {
	To      string `json:"to"`
	Payload string `json:"payload"`
}

type sendResponse struct {
	Nonce      string `json:"nonce"`
	Router     string `json:"router,omitempty"`
	SentUnixNS int64  `json:"sent_unix_ns"`
}

// decode reads a JSON request body into v. It answers 415 unless the body is
// declared application/json, 413 for a body over MaxBodyBytes and 400 for
// anything but exactly one JSON value.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: want application/json", ct))
		return false
	}
	fail := func(err error) bool {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", mbe.Limit))
		} else {
			writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		}
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail(err)
	}
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return true
	case err == nil:
		return fail(errors.New("unexpected data after the JSON value"))
	default:
		return fail(err)
	}
}

func (s *Server) broadcast(w http.ResponseWriter, r *http.Request) {
	var req sendRequest
	if !s.decode(w, r, &req) {
		return
	}
	if req.To != "" {
		writeError(w, http.StatusBadRequest, `"to" is not accepted by /v1/broadcast; use /v1/send`)
		return
	}
	sent := time.Now()
	env, err := s.node.Broadcast(r.Context(), wrapperspb.String(req.Payload))
	if err != nil {
		writeError(w, statusOf(err), "broadcast failed: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, sendResponse{Nonce: strconv.FormatUint(env.GetNonce(), 10), SentUnixNS: sent.UnixNano()})
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	var req sendRequest
	if !s.decode(w, r, &req) {
		return
	}
	addr, err := identity.ParseAddress(req.To)
	if err != nil {
		writeError(w, http.StatusBadRequest, `"to" must be a 40-hex-digit address: `+err.Error())
		return
	}
	sent := time.Now()
	env, err := s.node.Send(r.Context(), addr, wrapperspb.String(req.Payload))
	if err != nil {
		writeError(w, statusOf(err), "send failed: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, sendResponse{Nonce: strconv.FormatUint(env.GetNonce(), 10), SentUnixNS: sent.UnixNano()})
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.node.Status())
}

func (s *Server) peers(w http.ResponseWriter, _ *http.Request) {
	ps := s.node.Peers()
	if ps == nil {
		ps = []p2p.PeerInfo{}
	}
	writeJSON(w, http.StatusOK, ps)
}

// messages streams deliveries as Server-Sent Events. ?history=1 first replays
// the recorded ones; ?stream=0 returns the history as one JSON array.
func (s *Server) messages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("stream") == "0" || q.Get("stream") == "false" {
		writeJSON(w, http.StatusOK, s.feed.History())
		return
	}
	if _, ok := w.(http.Flusher); !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	var (
		hist []Message
		sub  *Subscription
	)
	if q.Get("history") == "1" || q.Get("history") == "true" {
		hist, sub = s.feed.SubscribeWithHistory()
	} else {
		sub = s.feed.Subscribe()
	}
	defer sub.Close()
	// The server's WriteTimeout would end a long stream; each event gets
	// its own deadline instead, so only a subscriber that stops reading is
	// cut off.
	rc := http.NewResponseController(w)
	deadline := func() {
		if err := rc.SetWriteDeadline(time.Now().Add(s.cfg.StreamWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			s.log.Debug("setting stream write deadline", "err", err)
		}
	}
	deadline()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	// write sends m, preceded by a "dropped" event if this subscriber has
	// missed messages since the last one.
	write := func(m Message) bool {
		if !writeDropped(w, sub) {
			return false
		}
		b, _ := json.Marshal(m)
		deadline()
		_, err := fmt.Fprintf(w, "id: %s\nevent: message\ndata: %s\n\n", m.Nonce, b)
		if err != nil {
			s.c.streamsCut.Add(1)
		}
		return err == nil
	}
	flush := func() bool {
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			s.c.streamsCut.Add(1)
			return false
		}
		return true
	}
	for _, m := range hist {
		if !write(m) {
			return
		}
	}
	if !flush() {
		return
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case m := <-sub.C:
			sub.Release(m)
			if !write(m) || !flush() {
				return
			}
		case <-keepalive.C:
			deadline()
			if !writeDropped(w, sub) {
				return
			}
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || !flush() {
				return
			}
		}
	}
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, p2p.ErrUnknownPeer):
		return http.StatusNotFound
	case errors.Is(err, wire.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, wire.ErrEmpty):
		return http.StatusBadRequest
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusGatewayTimeout
	}
	return http.StatusServiceUnavailable
}

// writeDropped emits `event: dropped` with the number of messages sub missed
// since the last such event, if any.
func writeDropped(w io.Writer, sub *Subscription) bool {
	n := sub.TakeDropped()
	if n == 0 {
		return true
	}
	_, err := fmt.Fprintf(w, "event: dropped\ndata: {\"dropped\":%d}\n\n", n)
	return err == nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
