//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package home

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("lock held")

// flockExclusive is a no-op where flock(2) is unavailable: the home is not
// protected against a second node there.
func flockExclusive(*os.File) error { return nil }
