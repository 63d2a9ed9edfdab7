package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/rainp2p/rainp2p/internal/admin"
	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// fakeNode answers every call without a network; err, when set, is what
// Broadcast and Send fail with.
type fakeNode struct{ err error }

func (n fakeNode) Broadcast(context.Context, proto.Message) (*wire.Envelope, error) {
	if n.err != nil {
		return nil, n.err
	}
	return &wire.Envelope{Nonce: 7}, nil
}

func (n fakeNode) Send(_ context.Context, _ identity.Address, m proto.Message) (*wire.Envelope, error) {
	return n.Broadcast(context.Background(), m)
}
func (fakeNode) Status() p2p.Status    { return p2p.Status{Address: "fake"} }
func (fakeNode) Peers() []p2p.PeerInfo { return nil }

func fakeHandler(node admin.Node) http.Handler {
	feed := admin.NewFeed(10, 0, 4)
	reg := prometheus.NewRegistry()
	reg.MustRegister(admin.NewFeedCollector(feed))
	return admin.NewServer(node, feed, reg, nil).Handler()
}

// apiRequest is one request to the admin API; zero fields mean a well-formed
// local request.
type apiRequest struct {
	method, path, host, origin, contentType, body string
}

func (a apiRequest) do(h http.Handler) *httptest.ResponseRecorder {
	method, path, body := a.method, a.path, a.body
	if method == "" {
		method = http.MethodGet
	}
	if path == "" {
		path = "/v1/status"
	}
	if method == http.MethodPost && body == "" {
		body = `{"payload":"x"}`
	}
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Host = "127.0.0.1:8080"
	if a.host != "" {
		req.Host = a.host
	}
	if a.host == "-" {
		req.Host = ""
	}
	if a.origin != "" {
		req.Header.Set("Origin", a.origin)
	}
	switch {
	case a.contentType == "-":
	case a.contentType != "":
		req.Header.Set("Content-Type", a.contentType)
	case method == http.MethodPost:
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder, want int) {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("got %d %s, want %d", rec.Code, rec.Body, want)
	}
	if want >= 400 {
		var body map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error"] == "" {
			t.Fatalf("error answer is not a JSON error: %q", rec.Body)
		}
	}
}

func TestOnlyLocalSameOriginJSONRequestsAreServed(t *testing.T) {
	h := fakeHandler(fakeNode{})
	tests := []struct {
		name string
		req  apiRequest
		want int
	}{
		{"a request to 127.0.0.1 is served", apiRequest{}, http.StatusOK},
		{"a request to localhost on any port is served", apiRequest{host: "localhost:1"}, http.StatusOK},
		{"a request to LOCALHOST is served", apiRequest{host: "LOCALHOST:8080"}, http.StatusOK},
		{"a request to [::1] is served", apiRequest{host: "[::1]:9"}, http.StatusOK},
		{"a request to a loopback host without a port is served", apiRequest{host: "localhost"}, http.StatusOK},
		{"a request naming another host (DNS rebinding) is refused", apiRequest{host: "evil.example:8080"}, http.StatusForbidden},
		{"a request naming a look-alike host is refused", apiRequest{host: "127.0.0.1.nip.io:8080"}, http.StatusForbidden},
		{"a request naming localhost as a subdomain is refused", apiRequest{host: "localhost.evil.example"}, http.StatusForbidden},
		{"a request naming a LAN address is refused", apiRequest{host: "192.168.1.2:8080"}, http.StatusForbidden},
		{"a request without a host is refused", apiRequest{host: "-"}, http.StatusForbidden},
		{"a POST from a rebinding host is refused before it acts", apiRequest{method: http.MethodPost, path: "/v1/broadcast", host: "evil.example"}, http.StatusForbidden},
		{"a request from a loopback origin is served", apiRequest{origin: "http://localhost:3000"}, http.StatusOK},
		{"a request from an IPv6 loopback origin is served", apiRequest{origin: "http://[::1]:1"}, http.StatusOK},
		{"a request from a 127.0.0.1 origin is served", apiRequest{origin: "http://127.0.0.1:5"}, http.StatusOK},
		{"a request from another site is refused", apiRequest{origin: "http://evil.example"}, http.StatusForbidden},
		{"a POST from another site is refused", apiRequest{method: http.MethodPost, path: "/v1/broadcast", origin: "https://evil.example"}, http.StatusForbidden},
		{"a request from an opaque origin is refused", apiRequest{origin: "null"}, http.StatusForbidden},
		{"a request from an https loopback origin is refused", apiRequest{origin: "https://localhost:1"}, http.StatusForbidden},
		{"a JSON POST is served", apiRequest{method: http.MethodPost, path: "/v1/broadcast"}, http.StatusOK},
		{"a JSON POST with a charset is served", apiRequest{method: http.MethodPost, path: "/v1/broadcast", contentType: "application/json; charset=utf-8"}, http.StatusOK},
		{"a text/plain POST (a cross-site form) is refused", apiRequest{method: http.MethodPost, path: "/v1/broadcast", contentType: "text/plain"}, http.StatusUnsupportedMediaType},
		{"a form POST is refused", apiRequest{method: http.MethodPost, path: "/v1/send", contentType: "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"a POST without a content type is refused", apiRequest{method: http.MethodPost, path: "/v1/broadcast", contentType: "-"}, http.StatusUnsupportedMediaType},
		{"a POST with a malformed content type is refused", apiRequest{method: http.MethodPost, path: "/v1/broadcast", contentType: "application/json; ="}, http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkAnswer(t, tt.req.do(h), tt.want) })
	}
}

func TestAWrongMethodOnAKnownPathIs405WithAllow(t *testing.T) {
	h := fakeHandler(fakeNode{})
	tests := []struct {
		name      string
		req       apiRequest
		want      int
		wantAllow string
	}{
		{"GET on broadcast allows POST", apiRequest{path: "/v1/broadcast"}, http.StatusMethodNotAllowed, "POST"},
		{"GET on send allows POST", apiRequest{path: "/v1/send"}, http.StatusMethodNotAllowed, "POST"},
		{"POST on status allows GET", apiRequest{method: http.MethodPost, path: "/v1/status"}, http.StatusMethodNotAllowed, "GET"},
		{"DELETE on metrics allows GET", apiRequest{method: http.MethodDelete, path: "/metrics"}, http.StatusMethodNotAllowed, "GET"},
		{"an unknown path is still 404", apiRequest{path: "/v1/nope"}, http.StatusNotFound, ""},
		{"a POST to an unknown path is still 404", apiRequest{method: http.MethodPost, path: "/v1/nope"}, http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tt.req.do(h)
			checkAnswer(t, rec, tt.want)
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Fatalf("Allow %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

func TestARequestBodyMustBeOneJSONValueWithinTheLimit(t *testing.T) {
	h := fakeHandler(fakeNode{})
	big := strings.Repeat("a", admin.MaxBodyBytes)
	tests := []struct {
		name, body string
		want       int
	}{
		{"one object is served", `{"payload":"x"}`, http.StatusOK},
		{"trailing whitespace is served", "{\"payload\":\"x\"}\n \t\n", http.StatusOK},
		{"trailing garbage is refused", `{"payload":"x"} garbage`, http.StatusBadRequest},
		{"a second object is refused", `{"payload":"x"}{"payload":"y"}`, http.StatusBadRequest},
		{"a trailing number is refused", `{"payload":"x"} 1`, http.StatusBadRequest},
		{"an empty body is refused", " ", http.StatusBadRequest},
		{"a body over the limit is too large", `{"payload":"` + big + `"}`, http.StatusRequestEntityTooLarge},
		{"a trailing value over the limit is too large", `{"payload":"x"} "` + big + `"`, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkAnswer(t, apiRequest{method: http.MethodPost, path: "/v1/broadcast", body: tt.body}.do(h), tt.want)
		})
	}
}

func TestNodeErrorsMapToStatusCodes(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"an empty message is a bad request", fmt.Errorf("wrapped: %w", wire.ErrEmpty), http.StatusBadRequest},
		{"a message over the limit is too large", wire.ErrTooLarge, http.StatusRequestEntityTooLarge},
		{"an unknown peer is not found", p2p.ErrUnknownPeer, http.StatusNotFound},
		{"a timeout is a gateway timeout", context.DeadlineExceeded, http.StatusGatewayTimeout},
		{"anything else is unavailable", errors.New("no route"), http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fakeHandler(fakeNode{err: tt.err})
			checkAnswer(t, apiRequest{method: http.MethodPost, path: "/v1/broadcast"}.do(h), tt.want)
			to := strings.Repeat("ab", 20)
			checkAnswer(t, apiRequest{method: http.MethodPost, path: "/v1/send", body: `{"to":"` + to + `","payload":"x"}`}.do(h), tt.want)
		})
	}
}
