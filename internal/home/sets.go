package home

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/rainp2p/rainp2p/internal/jsonfile"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

// Files for validator sets by height.
const (
	// SetsDir holds <height>.json files, each a validator set in the
	// genesis format, in force from that height until the next one.
	SetsDir = "validators"
	// HeightFile holds the height the node stands at (decimal); without it
	// the node stands at the genesis height.
	HeightFile = "height"
)

// Sets are a home's validator sets by height: the genesis and every
// validators/<height>.json. It is a validators.Provider; Reload re-reads the
// directory. It is safe for concurrent use.
type Sets struct {
	dir     string
	genesis *validators.Genesis

	mu      sync.RWMutex
	heights []uint64 // sorted
	sets    map[uint64]*validators.Set
}

// LoadSets reads the genesis's set and every set file of the home dir.
func LoadSets(dir string, g *validators.Genesis, genesisSet *validators.Set) (*Sets, error) {
	s := &Sets{dir: dir, genesis: g}
	if err := s.load(genesisSet); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload re-reads the set files. On error the sets loaded before stay.
func (s *Sets) Reload() error {
	s.mu.RLock()
	genesisSet := s.sets[s.genesis.Height]
	s.mu.RUnlock()
	return s.load(genesisSet)
}

func (s *Sets) load(genesisSet *validators.Set) error {
	sets := map[uint64]*validators.Set{s.genesis.Height: genesisSet}
	entries, err := os.ReadDir(filepath.Join(s.dir, SetsDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", filepath.Join(s.dir, SetsDir), err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		h, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: name it <height>.json", filepath.Join(s.dir, SetsDir, e.Name()))
		}
		set, err := s.readSet(filepath.Join(s.dir, SetsDir, e.Name()), h)
		if err != nil {
			return err
		}
		sets[h] = set
	}
	heights := make([]uint64, 0, len(sets))
	for h := range sets {
		heights = append(heights, h)
	}
	slices.Sort(heights)
	s.mu.Lock()
	s.sets, s.heights = sets, heights
	s.mu.Unlock()
	return nil
}

// readSet reads a set file for height h. Its network_id and height may be
// left out; if given they must be the genesis's network and h.
func (s *Sets) readSet(path string, h uint64) (*validators.Set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading validator set: %w", err)
	}
	var g validators.Genesis
	if err := jsonfile.Decode(b, &g); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", validators.ErrInvalid, path, err)
	}
	if h == s.genesis.Height {
		// Save refuses it too: the genesis's set is genesis.json's.
		return nil, fmt.Errorf("%w: %s: height %d is the genesis height; edit genesis.json instead", validators.ErrInvalid, path, h)
	}
	return s.check(path, h, &g)
}

func (s *Sets) check(path string, h uint64, g *validators.Genesis) (*validators.Set, error) {
	switch {
	case g.NetworkID != "" && g.NetworkID != s.genesis.NetworkID:
		return nil, fmt.Errorf("%w: %s is for network %q, not %q", validators.ErrInvalid, path, g.NetworkID, s.genesis.NetworkID)
	case g.Height != 0 && g.Height != h:
		return nil, fmt.Errorf("%w: %s says height %d", validators.ErrInvalid, path, g.Height)
	case h < s.genesis.Height:
		return nil, fmt.Errorf("%w: %s: height %d is below the genesis height %d", validators.ErrInvalid, path, h, s.genesis.Height)
	case len(g.Validators) == 0:
		return nil, fmt.Errorf("%w: %s lists no validators", validators.ErrInvalid, path)
	}
	g.NetworkID, g.Height = s.genesis.NetworkID, h
	set, err := g.Set()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return set, nil
}

// ValidatorSet returns the set in force at height: the one of the highest
// height not above it.
func (s *Sets) ValidatorSet(_ context.Context, height uint64) (*validators.Set, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, found := slices.BinarySearch(s.heights, height)
	if !found {
		i--
	}
	if i < 0 {
		return nil, fmt.Errorf("%w: height %d is below the genesis height %d", validators.ErrUnknownSet, height, s.genesis.Height)
	}
	return s.sets[s.heights[i]], nil
}

// Save checks members as the set in force from height h, writes it to
// validators/<h>.json (replacing an older file for h) and adds it.
func (s *Sets) Save(h uint64, members []validators.GenesisMember) (*validators.Set, error) {
	path := filepath.Join(s.dir, SetsDir, strconv.FormatUint(h, 10)+".json")
	g := &validators.Genesis{NetworkID: s.genesis.NetworkID, Height: h, Validators: members}
	set, err := s.check(path, h, g)
	if err != nil {
		return nil, err
	}
	if h == s.genesis.Height {
		return nil, fmt.Errorf("%w: height %d is the genesis height; edit genesis.json instead", validators.ErrInvalid, h)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := ReplaceJSON(path, g); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sets[h]; !ok {
		s.heights = append(s.heights, h)
		slices.Sort(s.heights)
	}
	s.sets[h] = set
	return set, nil
}

// ReadHeight reads the home's height file; without one it is the genesis
// height.
func ReadHeight(dir string, g *validators.Genesis) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, HeightFile))
	if errors.Is(err, fs.ErrNotExist) {
		return g.Height, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the height file: %w", err)
	}
	h, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: want a decimal height: %w", filepath.Join(dir, HeightFile), err)
	}
	return h, nil
}

// WriteHeight records the height the node stands at.
func WriteHeight(dir string, h uint64) error {
	return replaceFile(filepath.Join(dir, HeightFile), []byte(strconv.FormatUint(h, 10)+"\n"))
}

// ReplaceJSON writes v as indented JSON through a temporary file and a
// rename: readers see the old file or the new one, never half of one.
func ReplaceJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return replaceFile(path, append(b, '\n'))
}

func replaceFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
