//go:build !linux

package netns

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"
)

// Available reports that namespaces exist only on Linux.
func Available() error {
	return fmt.Errorf("%w: network namespaces need Linux, not %s", ErrUnavailable, runtime.GOOS)
}

// Fabric is unavailable off Linux.
type Fabric struct{}

// New always fails off Linux.
func New(context.Context, int) (*Fabric, error) { return nil, Available() }

func (f *Fabric) Name(int) string                          { return "" }
func (f *Fabric) Len() int                                 { return 0 }
func (f *Fabric) ID() string                               { return "" }
func (f *Fabric) Close() error                             { return nil }
func (f *Fabric) Command(int, string, ...string) *exec.Cmd { return nil }
func (f *Fabric) DialContext(context.Context, int, string, string) (net.Conn, error) {
	return nil, Available()
}

// RemoveStale does nothing off Linux.
func RemoveStale(context.Context) {}

// List is empty off Linux.
func List() []string { return nil }
