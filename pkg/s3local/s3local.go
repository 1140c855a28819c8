// Package s3local serves an S3-compatible API (gofakes3 over an in-memory
// backend) on a real HTTP listener, path-style, so that aws-sdk-go-v2 clients
// reach it exactly as they reach S3: http://127.0.0.1:PORT/<bucket>/<key>.
//
// The server accepts any credentials; clients still sign requests, so use
// the static ones below. Objects live in memory and vanish with the server.
// It is for tests (through pkg/testenv) and the local demo stack.
package s3local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	s := &Server{
		backend:  backend,
		listener: l,
		http: &http.Server{
			Handler:           gofakes3.New(backend, fakeOpts...).Server(),
			ReadHeaderTimeout: 30 * time.Second,
		},
		done: make(chan error, 1),
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

// Close stops accepting requests, waits for running ones until ctx ends,
// then closes the listener and every connection.
func (s *Server) Close(ctx context.Context) error {
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
