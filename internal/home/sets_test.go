package home

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

func members(t *testing.T, n int) []validators.GenesisMember {
	t.Helper()
	var ms []validators.GenesisMember
	for range n {
		k, err := identity.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		m, err := validators.Member(k.Private.GetPublic(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	return ms
}

// newHome writes a home whose genesis (height 5) has one validator.
func newHome(t *testing.T) *Node {
	t.Helper()
	dir := t.TempDir()
	g := &validators.Genesis{NetworkID: "sets-test", Height: 5, Validators: members(t, 1)}
	if _, err := Init(dir, g.NetworkID, DefaultConfig(), g); err != nil {
		t.Fatal(err)
	}
	n, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writeSet(t *testing.T, dir, name string, g validators.Genesis) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, SetsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(filepath.Join(dir, SetsDir, name), g); err != nil {
		t.Fatal(err)
	}
}

func TestTheSetInForceIsTheLatestNotAboveTheHeight(t *testing.T) {
	n := newHome(t)
	writeSet(t, n.Dir, "10.json", validators.Genesis{Validators: members(t, 2)})
	writeSet(t, n.Dir, "20.json", validators.Genesis{NetworkID: "sets-test", Height: 20, Validators: members(t, 3)})
	n, err := Load(n.Dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		height, setHeight uint64
		size              int
	}{{5, 5, 1}, {9, 5, 1}, {10, 10, 2}, {19, 10, 2}, {20, 20, 3}, {1 << 40, 20, 3}}
	for _, tt := range tests {
		s, err := n.Sets.ValidatorSet(context.Background(), tt.height)
		if err != nil || s.Height() != tt.setHeight || s.Len() != tt.size {
			t.Errorf("at height %d: set of height %d with %d validators (%v), want %d with %d", tt.height, s.Height(), s.Len(), err, tt.setHeight, tt.size)
		}
	}
	if _, err := n.Sets.ValidatorSet(context.Background(), 4); !errors.Is(err, validators.ErrUnknownSet) {
		t.Errorf("below genesis: %v, want ErrUnknownSet", err)
	}
}

func TestBadSetFilesAreRefusedByName(t *testing.T) {
	tests := []struct {
		name, file string
		g          validators.Genesis
		want       string
	}{
		{"a name that is not a height", "ten.json", validators.Genesis{}, "<height>.json"},
		{"another network", "10.json", validators.Genesis{NetworkID: "other"}, "network"},
		{"a height unlike the name", "10.json", validators.Genesis{Height: 11}, "says height 11"},
		{"a height below genesis", "3.json", validators.Genesis{}, "below the genesis"},
		{"the genesis height, which genesis.json holds", "5.json", validators.Genesis{}, "genesis height"},
		{"no validators", "10.json", validators.Genesis{}, "no validators"},
	}
	for _, tt := range tests {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			n := newHome(t)
			g := tt.g
			if tt.want != "no validators" {
				g.Validators = members(t, 1)
			}
			writeSet(t, n.Dir, tt.file, g)
			if _, err := Load(n.Dir); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// recorder is a module that records the sets it is given.
type recorder struct{ sets []*validators.Set }

func (r *recorder) UpdateValidators(s *validators.Set) error {
	r.sets = append(r.sets, s)
	return nil
}

func TestLiveMovesReplacesAndReloadsPersistently(t *testing.T) {
	n := newHome(t)
	mod := &recorder{}
	live := NewLive(n, mod)
	ctx := context.Background()

	next := members(t, 2)
	set, err := live.Replace(ctx, 10, next)
	if err != nil || set.Height() != 10 || set.Len() != 2 || mod.sets[len(mod.sets)-1] != set {
		t.Fatalf("Replace: %v, %v", set, err)
	}
	if h, cur := live.Current(); h != 10 || cur != set {
		t.Fatalf("Current = %d, %v", h, cur)
	}
	if _, err := live.MoveTo(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if got := mod.sets[len(mod.sets)-1]; got.Height() != 5 {
		t.Fatalf("at height 7 the module got the set of height %d, want the genesis's", got.Height())
	}
	// What a restart would see.
	again, err := Load(n.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.Height != 7 {
		t.Fatalf("after a restart the node stands at %d, want 7", again.Height)
	}
	if s, _ := again.Sets.ValidatorSet(ctx, 10); s.Len() != 2 {
		t.Fatal("the replaced set was not saved")
	}

	// An operator edits the files and sends SIGHUP.
	writeSet(t, n.Dir, "30.json", validators.Genesis{Validators: members(t, 3)})
	if err := WriteHeight(n.Dir, 31); err != nil {
		t.Fatal(err)
	}
	if set, err := live.Reload(ctx); err != nil || set.Height() != 30 || set.Len() != 3 {
		t.Fatalf("Reload: %v, %v", set, err)
	}

	// Bad changes are refused and change nothing.
	applied := len(mod.sets)
	writeSet(t, n.Dir, "40.json", validators.Genesis{NetworkID: "other", Validators: members(t, 1)})
	if _, err := live.Reload(ctx); err == nil {
		t.Fatal("a reload with a bad file succeeded")
	}
	if _, err := live.MoveTo(ctx, 1); !errors.Is(err, validators.ErrUnknownSet) {
		t.Fatalf("MoveTo below genesis: %v", err)
	}
	if _, err := live.Replace(ctx, 50, []validators.GenesisMember{{PublicKey: "zz"}}); !errors.Is(err, validators.ErrInvalid) {
		t.Fatalf("Replace with a bad key: %v", err)
	}
	if h, _ := live.Current(); h != 31 || len(mod.sets) != applied {
		t.Fatalf("a refused change moved the node to %d or reached the module", h)
	}
}
