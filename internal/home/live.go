package home

import (
	"context"
	"fmt"
	"sync"

	"github.com/rainp2p/rainp2p/p2p/validators"
)

// Updater is what Live needs from a running module.
type Updater interface {
	UpdateValidators(*validators.Set) error
}

// Live keeps a running node on its home's validator sets: it moves the node
// to a height, replaces the set in force from a height, or re-reads the
// files (on SIGHUP). Each change is written to the home first (the height
// file, validators/<height>.json), so a restarted node comes back where it
// was, then pushed into the module, whose routers follow without a restart.
type Live struct {
	dir  string
	sets *Sets
	mod  Updater

	mu     sync.Mutex
	height uint64
	set    *validators.Set // in force; nil until the first change
}

// NewLive manages the validator sets of the node n runs as mod.
func NewLive(n *Node, mod Updater) *Live {
	return &Live{dir: n.Dir, sets: n.Sets, mod: mod, height: n.Height}
}

// Current is the height the node stands at and the set in force there.
func (l *Live) Current() (uint64, *validators.Set) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.set == nil {
		l.set, _ = l.sets.ValidatorSet(context.Background(), l.height)
	}
	return l.height, l.set
}

// MoveTo moves the node to height h and applies the set in force there.
func (l *Live) MoveTo(ctx context.Context, h uint64) (*validators.Set, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.moveLocked(ctx, h)
}

// Replace makes members the set in force from height h, and moves the node
// there.
func (l *Live) Replace(ctx context.Context, h uint64, members []validators.GenesisMember) (*validators.Set, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.sets.Save(h, members); err != nil {
		return nil, err
	}
	return l.moveLocked(ctx, h)
}

// Reload re-reads the set files and the height file, and applies the set
// in force at that height. On error nothing changes.
func (l *Live) Reload(ctx context.Context) (*validators.Set, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, err := ReadHeight(l.dir, l.sets.genesis)
	if err != nil {
		return nil, err
	}
	if err := l.sets.Reload(); err != nil {
		return nil, err
	}
	return l.applyLocked(ctx, h)
}

func (l *Live) moveLocked(ctx context.Context, h uint64) (*validators.Set, error) {
	if _, err := l.sets.ValidatorSet(ctx, h); err != nil {
		return nil, err
	}
	if err := WriteHeight(l.dir, h); err != nil {
		return nil, err
	}
	return l.applyLocked(ctx, h)
}

func (l *Live) applyLocked(ctx context.Context, h uint64) (*validators.Set, error) {
	set, err := l.sets.ValidatorSet(ctx, h)
	if err != nil {
		return nil, err
	}
	if err := l.mod.UpdateValidators(set); err != nil {
		return nil, fmt.Errorf("applying the validator set of height %d: %w", set.Height(), err)
	}
	l.height, l.set = h, set
	return set, nil
}
