package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// Every redms binary starts the same way (as every Thanos subcommand comes
// from one main):
//
//	p, err := service.New(service.Options{Name: "redms-loader", Version: version, Log: os.Stderr}, cfg.Settings)
//	if err != nil { ... exit 2 }
//	defer p.Close() // reports a panic of main's goroutine to Sentry, flushes
//	err = p.Run(ctx, func(ctx context.Context) error {
//		... connect, retrying with Retry while /metrics already answers ...
//		p.Go("coordinator", coord.Run)
//		return nil
//	})
//
// New builds the logger (JSON, or text for a terminal tool; every Error line
// also goes to Sentry when a DSN is set), the process's one Prometheus
// registry and its Health. Run serves /metrics, /healthz and /readyz (and
// pprof) from them, runs main and the loops main registers with Go under a
// context that SIGINT or SIGTERM cancels, and returns when all have
// returned: the first loop to fail cancels the others.

// shutdownGrace is how much longer than Settings.ShutdownTimeout Run waits
// for its loops after the stop began before it gives up on them.
const shutdownGrace = 10 * time.Second

// serverShutdownTimeout bounds the metrics and pprof servers' Shutdown.
const serverShutdownTimeout = 5 * time.Second

// Options say which binary a process is.
type Options struct {
	// Name is the binary (redms-capture): the service attribute of every
	// JSON log line and the service tag of every Sentry event.
	Name    string
	Version string
	// Tags are more Sentry tags (slot, replica).
	Tags map[string]string
	// Log receives the log lines (standard error, or standard output).
	Log io.Writer
	// Text writes human-readable log lines (for a terminal, without the
	// service attribute) instead of JSON.
	Text bool
}

// Process is one running binary: its logger, registry and health, and the
// loops Run runs.
type Process struct {
	Log      *slog.Logger
	Registry *prometheus.Registry
	Health   *Health

	name     string
	settings Settings
	flush    func()
	grace    time.Duration // shutdownGrace; tests shorten it

	mu      sync.Mutex
	group   *errgroup.Group
	ctx     context.Context // the group's
	pending []loop          // registered before Run
	running map[string]int  // loop name → instances running
}

type loop struct {
	name string
	run  func(context.Context) error
}

// New builds the process from s: it checks s.LogLevel and enables Sentry
// when s.SentryDSN is set. Defer Close right after.
func New(o Options, s Settings) (*Process, error) {
	level, err := ParseLevel(s.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	var log *slog.Logger
	if o.Text {
		log = slog.New(SentryHandler(slog.NewTextHandler(o.Log, &slog.HandlerOptions{Level: level})))
	} else {
		log = slog.New(SentryHandler(slog.NewJSONHandler(o.Log, &slog.HandlerOptions{Level: level}))).With("service", o.Name)
	}
	tags := map[string]string{"service": o.Name}
	for k, v := range o.Tags {
		tags[k] = v
	}
	flush, err := InitSentry(s.SentryDSN, o.Version, tags)
	if err != nil {
		return nil, fmt.Errorf("sentry: %w", err)
	}
	return &Process{
		Log:      log,
		Registry: NewRegistry(),
		Health:   &Health{},
		name:     o.Name,
		settings: s,
		flush:    flush,
		grace:    shutdownGrace,
		running:  map[string]int{},
	}, nil
}

// Close ends the process: a panic of the goroutine that deferred it is
// reported to Sentry and raised again; queued Sentry events are flushed.
func (p *Process) Close() {
	if r := recover(); r != nil {
		ReportPanic(r)
		p.flush()
		panic(r)
	}
	p.flush()
}

// Go registers a loop that runs beside main until its context ends. An
// error it returns stops the process (the other loops' context is
// cancelled and Run returns it); returning nil ends only this loop. Go may
// be called before Run and from main or another loop while Run runs.
func (p *Process) Go(name string, run func(ctx context.Context) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.group == nil {
		p.pending = append(p.pending, loop{name, run})
		return
	}
	p.start(loop{name, run})
}

// start runs l in the group; p.mu is held.
func (p *Process) start(l loop) {
	p.running[l.name]++
	ctx := p.ctx
	p.group.Go(func() error {
		defer func() {
			p.mu.Lock()
			if p.running[l.name]--; p.running[l.name] == 0 {
				delete(p.running, l.name)
			}
			p.mu.Unlock()
		}()
		// A panic reaches Sentry before it ends the process.
		defer func() {
			if r := recover(); r != nil {
				ReportPanic(r)
				p.flush()
				panic(r)
			}
		}()
		return l.run(ctx)
	})
}

// Run serves /metrics, /healthz and /readyz on Settings.MetricsAddr and
// pprof on Settings.PprofAddr (each when set), and runs main and the loops
// registered with Go, until all have returned. Their context ends when ctx
// does, on SIGINT or SIGTERM (a second signal kills the process at once),
// or when a loop fails. Once it has ended, Run waits Settings.ShutdownTimeout
// and a grace period for the loops to return and then gives up on them
// with an error naming them. It returns the first loop's error; an error
// that only says the context was cancelled, after a stop, is no error.
func (p *Process) Run(ctx context.Context, main func(ctx context.Context) error) error {
	sigCtx, stop := SignalContext(ctx)
	defer stop()
	go func() {
		<-sigCtx.Done()
		stop() // from now on a signal has its default effect
	}()
	g, gctx := errgroup.WithContext(sigCtx)
	p.mu.Lock()
	p.group, p.ctx = g, gctx
	if p.settings.MetricsAddr != "" {
		srv := NewServer(p.settings.MetricsAddr, p.Registry, p.Health)
		p.start(loop{"metrics server", func(ctx context.Context) error { return Serve(ctx, srv, serverShutdownTimeout) }})
	}
	if p.settings.PprofAddr != "" {
		srv := &http.Server{Addr: p.settings.PprofAddr, Handler: pprofHandler(), ReadHeaderTimeout: 10 * time.Second}
		p.start(loop{"pprof server", func(ctx context.Context) error { return Serve(ctx, srv, serverShutdownTimeout) }})
	}
	for _, l := range p.pending {
		p.start(l)
	}
	p.pending = nil
	p.start(loop{"main", main})
	p.mu.Unlock()

	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-gctx.Done():
		wait := p.settings.ShutdownTimeout + p.grace
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case err = <-done:
		case <-t.C:
			return fmt.Errorf("stop %s: %s still running %s after the stop began", p.name, p.runningNames(), wait)
		}
	}
	if errors.Is(err, context.Canceled) && sigCtx.Err() != nil {
		return nil // stopped before a loop was done with its setup
	}
	return err
}

func (p *Process) runningNames() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var names []string
	for n := range p.running {
		names = append(names, n)
	}
	slices.Sort(names)
	return fmt.Sprint(names)
}

// pprofHandler serves net/http/pprof's endpoints on their usual paths.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
