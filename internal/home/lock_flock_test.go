//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package home

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestASecondNodeCannotLockAHomeInUse(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Lock(dir)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second lock: %v, want ErrInUse", err)
	}
	for _, want := range []string{dir, "in use by another node", "pid " + strconv.Itoa(os.Getpid()) + "?"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	unlock, err = Lock(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	unlock()
}
