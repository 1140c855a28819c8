// Package service holds the lifecycle both redms binaries share: a JSON slog
// logger, one Prometheus registry per process, an HTTP server for /metrics,
// /healthz and /readyz that stops with Shutdown(deadline), and the signal
// context main runs under.
//
// /healthz answers 200 while the process is live (it says nothing about
// dependencies); /readyz answers 503 until the process reports it is
// connected to what it needs (Health.SetReady(true)), and again whenever it
// reports it is not.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewLogger returns a JSON logger writing to w at level (debug, info, warn
// or error, any case; empty means info).
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if level == "" {
		level = "info"
	}
	if strings.EqualFold(level, "warning") {
		level = "warn"
	}
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("parse log level %q (want debug, info, warn or error): %w", level, err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// NewRegistry is the process's one Prometheus registry, with the Go runtime
// and process collectors registered. Packages add their metrics with
// promauto.With(reg).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Health is what /healthz and /readyz report. The zero value is live and
// not ready. It is safe for concurrent use.
type Health struct {
	ready   atomic.Bool
	notLive atomic.Bool
}

// SetReady records whether the process is connected to its dependencies.
func (h *Health) SetReady(ready bool) { h.ready.Store(ready) }

// Ready reports the last SetReady.
func (h *Health) Ready() bool { return h.ready.Load() }

// SetLive records whether the process still runs its loops; a process that
// is not live fails /healthz so a supervisor restarts it.
func (h *Health) SetLive(live bool) { h.notLive.Store(!live) }

// Live reports the last SetLive (true until SetLive(false)).
func (h *Health) Live() bool { return !h.notLive.Load() }

// NewServer returns an HTTP server on addr serving /metrics from reg,
// /healthz and /readyz from h. Run it with Serve.
func NewServer(addr string, reg *prometheus.Registry, h *Health) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		status(w, h.Live(), "ok", "not live")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		status(w, h.Ready(), "ready", "not ready")
	})
	return &http.Server{
		Addr:              addr,
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
	}
}

func status(w http.ResponseWriter, ok bool, yes, no string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, no+"\n")
		return
	}
	_, _ = io.WriteString(w, yes+"\n")
}

// Serve listens on srv.Addr and serves until ctx is done, then stops with
// srv.Shutdown, giving open requests shutdownTimeout to finish before
// closing them. It returns nil after a clean stop, or the error that ended
// serving (such as an address in use).
func Serve(ctx context.Context, srv *http.Server, shutdownTimeout time.Duration) error {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", srv.Addr, err)
	}
	return ServeListener(ctx, srv, l, shutdownTimeout)
}

// ServeListener is Serve on a listener the caller opened (for ":0" ports).
func ServeListener(ctx context.Context, srv *http.Server, l net.Listener, shutdownTimeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve http on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("shut down http server: %w", err), srv.Close())
	}
	if serveErr := <-done; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("serve http on %s: %w", l.Addr(), serveErr))
	}
	return err
}

// SignalContext is cancelled on SIGINT or SIGTERM; main runs under it and
// calls stop when done (a second signal then kills the process as usual).
func SignalContext(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}
