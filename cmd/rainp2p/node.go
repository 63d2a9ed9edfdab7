package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/rainp2p/rainp2p/internal/admin"
	"github.com/rainp2p/rainp2p/internal/home"
	"github.com/rainp2p/rainp2p/p2p"
)

func init() { rootCmd.AddCommand(newNodeCmd()) }

func defaultHome() string {
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".rainp2p")
	}
	return ".rainp2p"
}

func newNodeCmd() *cobra.Command {
	var dir, logLevel, adminAddr string
	cmd := &cobra.Command{
		Use:   "node [--home DIR]",
		Short: "Run one node (validator or full node, per the validator set) until SIGINT/SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runNode(ctx, dir, logLevel, adminAddr, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&dir, "home", defaultHome(), "home directory (key.json, config.json, genesis.json)")
	cmd.Flags().StringVar(&logLevel, "log-level", "", "debug|info|warn|error (overrides config.json)")
	cmd.Flags().StringVar(&adminAddr, "admin", "", "admin API listen address, loopback only (overrides config.json)")
	return cmd
}

func runNode(ctx context.Context, dir, logLevel, adminAddr string, stderr interface{ Write([]byte) (int, error) }) error {
	// From the start, so a SIGHUP during start-up is a reload once the node
	// runs rather than the end of the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	n, err := home.Load(dir)
	if err != nil {
		return err
	}
	unlock, err := home.Lock(dir)
	if err != nil {
		return err
	}
	defer unlock()
	if logLevel == "" {
		logLevel = n.Config.LogLevel
	}
	level, err := home.ParseLogLevel(logLevel)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := n.P2PConfig(log)
	if err != nil {
		return err
	}
	if adminAddr == "" {
		adminAddr = n.Config.AdminAddr
	}
	if adminAddr == "" { // an empty admin_addr is the default, as every zero value
		adminAddr = admin.DefaultAddr
	}
	adminCfg := admin.DefaultConfig()
	if adminCfg.Token, err = admin.ReadToken(filepath.Join(dir, home.AdminTokenFile)); err != nil {
		return err
	}
	ln, err := admin.Listen(adminAddr)
	if err != nil {
		return err
	}
	defer ln.Close()

	reg := prometheus.NewRegistry()
	cfg.PrometheusRegisterer = reg // libp2p's own figures (resource manager, swarm) on /metrics
	m, err := p2p.New(cfg)
	if err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return fmt.Errorf("starting node: %w", err)
	}
	defer func() {
		if err := m.Close(); err != nil {
			log.Warn("closing module", "err", err)
		}
	}()

	feed := admin.NewFeed(admin.DefaultHistory, admin.DefaultHistoryBytes, admin.DefaultSubscriberBuffer)
	reg.MustRegister(collectors.NewGoCollector(), p2p.NewCollector(m), admin.NewFeedCollector(feed))
	live := home.NewLive(n, m)
	srv := admin.NewServer(m, feed, reg, log, admin.WithConfig(adminCfg), admin.WithValidatorSets(live))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reloaded := reloadOnSIGHUP(ctx, hup, live, log)
	defer func() { cancel(); <-reloaded }()
	done := make(chan struct{})
	defer func() { cancel(); <-done }() // also on the early returns below
	go func() {
		defer close(done)
		for {
			select {
			case d := <-m.Deliveries():
				feed.Publish(admin.MessageOf(d))
			case <-ctx.Done():
				return
			}
		}
	}()
	url := "http://" + ln.Addr().String()
	urlFile := filepath.Join(dir, home.AdminURLFile)
	// Written then renamed, so a reader never sees half a URL.
	if err := os.WriteFile(urlFile+".tmp", []byte(url+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", urlFile, err)
	}
	if err := os.Rename(urlFile+".tmp", urlFile); err != nil {
		return fmt.Errorf("writing %s: %w", urlFile, err)
	}
	defer removeIfHolds(urlFile, url+"\n")
	st := m.Status()
	log.Info("node ready", "address", st.Address, "role", st.Role, "admin", url, "listen", st.ListenAddrs)

	err = srv.Serve(ctx, ln)
	log.Info("node stopped")
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// reloadOnSIGHUP re-reads the home's validator sets and height file on each
// signal from hup until ctx ends, and closes the returned channel then.
func reloadOnSIGHUP(ctx context.Context, hup <-chan os.Signal, live *home.Live, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-hup:
				set, err := live.Reload(ctx)
				if err != nil {
					log.Error("SIGHUP: validator sets not reloaded; the node keeps its set", "err", err)
					continue
				}
				h, _ := live.Current()
				log.Info("SIGHUP: validator sets reloaded", "height", h, "set_height", set.Height(), "validators", set.Len())
			case <-ctx.Done():
				return
			}
		}
	}()
	return done
}

// removeIfHolds removes path only if it still holds want, so a node never
// deletes an admin.url another node has since written.
func removeIfHolds(path, want string) {
	if b, err := os.ReadFile(path); err == nil && string(b) == want {
		_ = os.Remove(path)
	}
}
