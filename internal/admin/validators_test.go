package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rainp2p/rainp2p/internal/admin"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

// fakeSets records what the route asked for.
type fakeSets struct {
	height   uint64
	set      *validators.Set
	replaced []validators.GenesisMember
}

func (f *fakeSets) Current() (uint64, *validators.Set) { return f.height, f.set }

func (f *fakeSets) MoveTo(_ context.Context, h uint64) (*validators.Set, error) {
	if h < 5 {
		return nil, validators.ErrUnknownSet
	}
	f.height = h
	return f.set, nil
}

func (f *fakeSets) Replace(_ context.Context, h uint64, ms []validators.GenesisMember) (*validators.Set, error) {
	g := validators.Genesis{NetworkID: "n", Height: h, Validators: ms}
	s, err := g.Set()
	if err != nil {
		return nil, err
	}
	f.height, f.set, f.replaced = h, s, ms
	return s, nil
}

func TestTheValidatorsRouteMovesAndReplacesBehindTheToken(t *testing.T) {
	k, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	m, err := validators.Member(k.Private.GetPublic(), nil)
	if err != nil {
		t.Fatal(err)
	}
	memberJSON, _ := json.Marshal([]validators.GenesisMember{m})
	const token = "t0ken"
	cfg := admin.DefaultConfig()
	cfg.Token = token
	sets := &fakeSets{height: 5}
	h := admin.NewServer(fakeNode{}, admin.NewFeed(10, 0, 4), prometheus.NewRegistry(), nil,
		admin.WithConfig(cfg), admin.WithValidatorSets(sets)).Handler()
	tests := []struct {
		name, method, body, auth string
		want                     int
		wantHeight               uint64
	}{
		{"reading the set needs no token", http.MethodGet, "", "", http.StatusOK, 5},
		{"a change without the token is refused", http.MethodPost, `{"height":9}`, "", http.StatusUnauthorized, 5},
		{"the token holder moves the node", http.MethodPost, `{"height":9}`, "Bearer " + token, http.StatusOK, 9},
		{"a height without a set is not found", http.MethodPost, `{"height":1}`, "Bearer " + token, http.StatusNotFound, 9},
		{"a change must name a height", http.MethodPost, `{}`, "Bearer " + token, http.StatusBadRequest, 9},
		{"a bad set is refused", http.MethodPost, `{"height":12,"validators":[{"public_key":"zz"}]}`, "Bearer " + token, http.StatusBadRequest, 9},
		{"the token holder replaces the set", http.MethodPost, `{"height":12,"validators":` + string(memberJSON) + `}`, "Bearer " + token, http.StatusOK, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, "http://127.0.0.1:1/v1/validators", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := &recorder{header: http.Header{}}
			h.ServeHTTP(rec, req)
			if rec.code != tt.want || sets.height != tt.wantHeight {
				t.Fatalf("got %d (%s) at height %d, want %d at height %d", rec.code, rec.body.String(), sets.height, tt.want, tt.wantHeight)
			}
		})
	}
	var ans struct {
		Height     uint64   `json:"height"`
		SetHeight  uint64   `json:"set_height"`
		SetHash    string   `json:"set_hash"`
		Validators []string `json:"validators"`
	}
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/v1/validators", nil)
	rec := &recorder{header: http.Header{}}
	h.ServeHTTP(rec, req)
	if err := json.Unmarshal([]byte(rec.body.String()), &ans); err != nil {
		t.Fatal(err)
	}
	if ans.Height != 12 || ans.SetHeight != 12 || len(ans.SetHash) != 64 || len(ans.Validators) != 1 || ans.Validators[0] != k.Address.String() {
		t.Fatalf("GET /v1/validators = %+v", ans)
	}
}
