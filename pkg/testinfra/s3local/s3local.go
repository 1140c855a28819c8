// Package s3local serves an S3-compatible API (gofakes3 over an in-memory
// backend) on a real HTTP listener, path-style, so that aws-sdk-go-v2 clients
// reach it exactly as they reach S3: http://127.0.0.1:PORT/<bucket>/<key>.
//
// The server accepts any credentials; clients still sign requests, so use
// the static ones below. Objects live in memory and vanish with the server.
// Tests break it on purpose with FailFor (every request answers 500
// InternalError) and StallFor (every request waits before it is served).
// It is for tests (through pkg/testenv) and the local demo stack.
package s3local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Credentials and region clients should use. The server does not check
// them, but SigV4 signing needs some.
const (
	AccessKeyID     = "redms-local"
	SecretAccessKey = "redms-local-secret"
	Region          = "us-east-1"
)

// Options configure a server.
type Options struct {
	// Addr to listen on. Empty: 127.0.0.1 and a free port.
	Addr string
	// Buckets to create at start.
	Buckets []string
	// Logger receives gofakes3's warnings and errors. Nil: discarded.
	Logger *slog.Logger
}

// Server is a running S3-compatible HTTP server.
type Server struct {
	backend  *s3mem.Backend
	http     *http.Server
	listener net.Listener
	done     chan error

	mu         sync.Mutex
	failUntil  time.Time
	stallUntil time.Time
	failed     int // requests answered 500 by FailFor
	stalled    int // requests held by StallFor
}

// Start listens on opts.Addr and serves until Close.
func Start(ctx context.Context, opts Options) (*Server, error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for s3 on %s: %w", addr, err)
	}
	backend := s3mem.New()
	fakeOpts := []gofakes3.Option{gofakes3.WithAutoBucket(false)}
	if opts.Logger != nil {
		fakeOpts = append(fakeOpts, gofakes3.WithLogger(slogAdapter{opts.Logger}))
	}
	s := &Server{backend: backend, listener: l, done: make(chan error, 1)}
	s.http = &http.Server{
		Handler:           s.faults(gofakes3.New(backend, fakeOpts...).Server()),
		ReadHeaderTimeout: 30 * time.Second,
	}
	for _, b := range opts.Buckets {
		if err := s.CreateBucket(b); err != nil {
			_ = l.Close()
			return nil, err
		}
	}
	go func() { s.done <- s.http.Serve(l) }()
	return s, nil
}

// Endpoint is the base URL clients use: http://127.0.0.1:PORT.
func (s *Server) Endpoint() string { return "http://" + s.listener.Addr().String() }

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// CreateBucket creates a bucket; creating an existing bucket is an error.
func (s *Server) CreateBucket(name string) error {
	if err := s.backend.CreateBucket(name); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	return nil
}

// FailFor makes every request that arrives within d answer 500
// InternalError without touching any object.
func (s *Server) FailFor(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failUntil = time.Now().Add(d)
}

// StallFor holds every request, arriving or waiting, until d has passed
// (or its client gives up); then it is served as usual. StallFor(0) ends a
// stall at once.
func (s *Server) StallFor(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stallUntil = time.Now().Add(d)
}

// Injected returns how many requests FailFor answered with 500 and how
// many StallFor held, since the start.
func (s *Server) Injected() (failed, stalled int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed, s.stalled
}

// faults wraps next with FailFor and StallFor.
func (s *Server) faults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.stall(r.Context()) {
			return
		}
		s.mu.Lock()
		fail := time.Now().Before(s.failUntil)
		if fail {
			s.failed++
		}
		s.mu.Unlock()
		if fail {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected by s3local.FailFor</Message></Error>`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// stall waits while a stall lasts (read again every few milliseconds, so
// that StallFor(0) and Close end it) and reports whether ctx ended first.
func (s *Server) stall(ctx context.Context) bool {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for counted := false; ; {
		s.mu.Lock()
		until := s.stallUntil
		if !counted && time.Now().Before(until) {
			s.stalled++
			counted = true
		}
		s.mu.Unlock()
		if !time.Now().Before(until) {
			return false
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return true
		}
	}
}

// Close stops accepting requests, waits for running ones until ctx ends,
// then closes the listener and every connection.
func (s *Server) Close(ctx context.Context) error {
	s.StallFor(0)
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.http.Close())
	}
	if serveErr := <-s.done; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("serve s3: %w", serveErr))
	}
	if err != nil {
		return fmt.Errorf("close s3 server: %w", err)
	}
	return nil
}

// slogAdapter writes gofakes3 log lines to a slog.Logger.
type slogAdapter struct{ l *slog.Logger }

var _ gofakes3.Logger = slogAdapter{}

func (a slogAdapter) Print(level gofakes3.LogLevel, v ...any) {
	msg := fmt.Sprint(v...)
	switch level {
	case gofakes3.LogErr:
		a.l.Error(msg)
	case gofakes3.LogWarn:
		a.l.Warn(msg)
	case gofakes3.LogInfo:
		a.l.Info(msg)
	default:
		a.l.Debug(msg)
	}
}
