// Package service is how every redms binary starts and stops (New, Run):
// a JSON slog logger, one Prometheus registry per process, an HTTP server
// for /metrics, /healthz and /readyz that stops with Shutdown(deadline), the
// signal context the loops run under, the settings every binary reads
// (Settings) and one backoff for everything that retries (Backoff, Retry).
//
// /healthz answers 200 while every loop that registered a heartbeat
// (Health.Heartbeat) has beaten within its interval, and 503 naming the
// stale ones otherwise: it says the loops are alive, nothing about
// dependencies. /readyz answers 503 until the process reports it is
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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewLogger returns a JSON logger writing to w at level (see ParseLevel).
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	l, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// ParseLevel reads a log level: debug, info, warn (or warning) or error, any
// case; empty means info.
func ParseLevel(level string) (slog.Level, error) {
	var l slog.Level
	if level == "" {
		level = "info"
	}
	if strings.EqualFold(level, "warning") {
		level = "warn"
	}
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return l, fmt.Errorf("parse log level %q (want debug, info, warn or error): %w", level, err)
	}
	return l, nil
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

// Health is what /healthz and /readyz report. The zero value is live (no
// heartbeats) and not ready. It is safe for concurrent use.
type Health struct {
	ready atomic.Bool

	mu    sync.Mutex
	beats map[*Heartbeat]struct{}
}

// SetReady records whether the process is connected to its dependencies.
func (h *Health) SetReady(ready bool) { h.ready.Store(ready) }

// Ready reports the last SetReady.
func (h *Health) Ready() bool { return h.ready.Load() }

// Heartbeat registers a long-running loop called name that calls Beat at
// least every within while it runs (each turn of the loop, whether or not
// its dependencies answer); /healthz fails once it has not for longer, so
// a supervisor restarts a process whose loop is stuck. Stop unregisters it.
func (h *Health) Heartbeat(name string, within time.Duration) *Heartbeat {
	b := &Heartbeat{name: name, within: within, h: h}
	b.Beat()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.beats == nil {
		h.beats = map[*Heartbeat]struct{}{}
	}
	h.beats[b] = struct{}{}
	return b
}

// Live reports whether every heartbeat is fresh, and names the stale ones.
func (h *Health) Live() (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	var stale []string
	for b := range h.beats {
		if age := now.Sub(time.Unix(0, b.last.Load())); age > b.within {
			stale = append(stale, fmt.Sprintf("%s (last beat %s ago, want every %s)", b.name, age.Round(time.Second), b.within))
		}
	}
	slices.Sort(stale)
	return len(stale) == 0, strings.Join(stale, ", ")
}

// Heartbeat is one loop's; see Health.Heartbeat.
type Heartbeat struct {
	name   string
	within time.Duration
	h      *Health
	last   atomic.Int64 // unix nanoseconds
}

// Beat says the loop is turning.
func (b *Heartbeat) Beat() { b.last.Store(time.Now().UnixNano()) }

// Stop unregisters the heartbeat (the loop ended on purpose).
func (b *Heartbeat) Stop() {
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	delete(b.h.beats, b)
}

// NewServer returns an HTTP server on addr serving /metrics from reg,
// /healthz and /readyz from h. Run it with Serve.
func NewServer(addr string, reg *prometheus.Registry, h *Health) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		live, stale := h.Live()
		status(w, live, "ok", "not live: "+stale)
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
// calls stop when done. Once the first signal has arrived a second one has
// its default effect and ends the process: the handler is removed before
// the context is cancelled, so nothing that watches the context (a stopped
// metrics server, a log line) can be seen while a second signal would
// still be swallowed, and a second signal that arrived in between is
// raised again.
func SignalContext(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ch:
			signal.Stop(ch)
			if len(ch) > 0 {
				second := (<-ch).(syscall.Signal)
				_ = syscall.Kill(os.Getpid(), second)
			}
		case <-ctx.Done():
			signal.Stop(ch)
		}
		cancel()
	}()
	return ctx, func() {
		cancel()
		<-stopped
	}
}
