package home

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFile is held (flock'ed) by a running node for as long as it runs, so a
// second node cannot use the same home, key and admin.url at once.
const LockFile = "node.lock"

// ErrInUse is returned by Lock when another process holds the home.
var ErrInUse = errors.New("home is in use by another node")

// Lock takes the home's exclusive, non-blocking node lock and records this
// process's pid in it. The lock is released by calling unlock or when the
// process exits, however it exits. The lock file itself is left in place.
func Lock(dir string) (unlock func() error, err error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := flockExclusive(f); err != nil {
		f.Close()
		if errors.Is(err, errWouldBlock) {
			pid := "unknown"
			if b, rerr := os.ReadFile(path); rerr == nil && strings.TrimSpace(string(b)) != "" {
				pid = strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("%w: home %s is in use by another node (pid %s?)", ErrInUse, dir, pid)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	// Best effort: the pid only makes the error above more helpful.
	if f.Truncate(0) == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f.Close, nil // closing the descriptor releases the lock
}
