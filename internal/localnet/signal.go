package localnet

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// ShutdownSignals are the signals that stop a localnet run in order.
var ShutdownSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

// SignalContext returns a context that ends on the first of
// ShutdownSignals, which starts an orderly shutdown. From then on the
// signals get their default handling again, so a second Ctrl-C kills the
// process at once rather than being swallowed while nodes stop (on Linux
// the nodes die with it, see sysProcAttr). Call stop when done.
func SignalContext(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	ctx, stop = signal.NotifyContext(parent, ShutdownSignals...)
	context.AfterFunc(ctx, stop)
	return ctx, stop
}
