package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/internal/admin"
	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair starts two validators on loopback and serves node 0's admin API.
func pair(t *testing.T) (*httptest.Server, []*p2p.Module) {
	t.Helper()
	var keys []*identity.Key
	var hosts []host.Host
	var members []validators.Validator
	for range 2 {
		k, _ := identity.GenerateKey()
		h, err := libp2p.New(libp2p.Identity(k.Private), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		keys, hosts = append(keys, k), append(hosts, h)
		members = append(members, validators.Validator{PublicKey: k.Private.GetPublic(), Multiaddrs: h.Addrs()})
	}
	set, err := validators.NewSet(0, members)
	if err != nil {
		t.Fatal(err)
	}
	var mods []*p2p.Module
	for i := range keys {
		cfg := p2p.DefaultConfig()
		cfg.NetworkID = "admin-test"
		cfg.Key, cfg.Host = keys[i], hosts[i]
		cfg.Validators = validators.StaticProvider{Set: set}
		m, err := p2p.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		mods = append(mods, m)
	}
	feed := admin.NewFeed(100, 0, 16)
	reg := prometheus.NewRegistry()
	reg.MustRegister(p2p.NewCollector(mods[0]), admin.NewFeedCollector(feed))
	srv := httptest.NewServer(admin.NewServer(mods[0], feed, reg, nil).Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case d := <-mods[0].Deliveries():
				feed.Publish(admin.MessageOf(d))
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		cancel()
		<-done
		for i, m := range mods {
			m.Close()
			hosts[i].Close()
		}
	})
	return srv, mods
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("response is not JSON: %v", err)
	}
	return resp.StatusCode, out
}

func TestBadRequestsGetA4xxWithAJSONError(t *testing.T) {
	srv, _ := pair(t)
	tests := []struct {
		name, path, body string
		want             int
	}{
		{"a body that is not JSON", "/v1/broadcast", "{", http.StatusBadRequest},
		{"an unknown field", "/v1/broadcast", `{"payload":"x","colour":"red"}`, http.StatusBadRequest},
		{"a broadcast with a recipient", "/v1/broadcast", `{"payload":"x","to":"00"}`, http.StatusBadRequest},
		{"a send to a malformed address", "/v1/send", `{"to":"nothex","payload":"x"}`, http.StatusBadRequest},
		{"a send to an unknown address", "/v1/send", `{"to":"` + strings.Repeat("ab", 20) + `","payload":"x"}`, http.StatusNotFound},
		{"an unknown endpoint", "/v1/nope", `{}`, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := post(t, srv.URL+tt.path, tt.body)
			if code != tt.want || body["error"] == "" || body["error"] == nil {
				t.Fatalf("got %d %v, want %d with an error", code, body, tt.want)
			}
		})
	}
}

func TestListenRefusesNonLoopbackAddresses(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "10.1.2.3:80", "example.com:80", "nonsense"} {
		if _, err := admin.Listen(addr); err == nil {
			t.Errorf("Listen(%q) succeeded", addr)
		} else if addr != "nonsense" && !errors.Is(err, admin.ErrNotLoopback) {
			t.Errorf("Listen(%q): %v", addr, err)
		}
	}
	ln, err := admin.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

func TestSendStatusStreamAndMetricsMove(t *testing.T) {
	srv, mods := pair(t)

	resp, err := http.Get(srv.URL + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var st p2p.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st.Role != p2p.RoleValidator || st.Address != mods[0].Address().String() || st.ValidatorSetSize != 2 {
		t.Fatalf("status %+v", st)
	}

	metric := func() string {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, `rainp2p_messages_delivered_total{router="raintree"}`) {
				return line
			}
		}
		t.Fatalf("no delivered metric in:\n%s", b)
		return ""
	}
	before := metric()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/messages", nil)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if ct := stream.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	env, err := mods[1].Send(ctx, mods[0].Address(), wrapperspb.String("hello admin"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stream.Body)
	var got admin.Message
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			if err := json.Unmarshal([]byte(data), &got); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if got.Payload != "hello admin" || got.Router != "raintree" || got.From != mods[1].Address().String() || got.Nonce == "" {
		t.Fatalf("streamed %+v (nonce %d)", got, env.GetNonce())
	}
	if after := metric(); after == before {
		t.Fatalf("delivered metric did not move: %s", after)
	}

	resp, err = http.Get(srv.URL + "/v1/messages?stream=0")
	if err != nil {
		t.Fatal(err)
	}
	var hist []admin.Message
	json.NewDecoder(resp.Body).Decode(&hist)
	resp.Body.Close()
	if len(hist) != 1 || hist[0].Nonce != got.Nonce {
		t.Fatalf("history %+v", hist)
	}

	code, body := post(t, srv.URL+"/v1/send", `{"to":"`+mods[1].Address().String()+`","payload":"back"}`)
	if code != http.StatusOK || body["nonce"] == "" {
		t.Fatalf("send: %d %v", code, body)
	}
}
