package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
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
	node Node
	feed *Feed
	reg  *prometheus.Registry
	log  *slog.Logger
	mux  *http.ServeMux
}

// NewServer wires the API over node, its delivery feed and a metrics
// registry.
func NewServer(node Node, feed *Feed, reg *prometheus.Registry, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{node: node, feed: feed, reg: reg, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /v1/broadcast", s.broadcast)
	s.mux.HandleFunc("POST /v1/send", s.send)
	s.mux.HandleFunc("GET /v1/status", s.status)
	s.mux.HandleFunc("GET /v1/peers", s.peers)
	s.mux.HandleFunc("GET /v1/messages", s.messages)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return s
}

// Handler returns the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.mux }

// Serve serves on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
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

func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
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
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	ch, cancel := s.feed.Subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	write := func(m Message) bool {
		b, _ := json.Marshal(m)
		_, err := fmt.Fprintf(w, "event: message\ndata: %s\n\n", b)
		return err == nil
	}
	if q.Get("history") == "1" || q.Get("history") == "true" {
		for _, m := range s.feed.History() {
			if !write(m) {
				return
			}
		}
	}
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case m := <-ch:
			if !write(m) {
				return
			}
			fl.Flush()
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, p2p.ErrUnknownPeer):
		return http.StatusNotFound
	case errors.Is(err, wire.ErrTooLarge), errors.Is(err, wire.ErrEmpty):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusGatewayTimeout
	}
	return http.StatusServiceUnavailable
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
