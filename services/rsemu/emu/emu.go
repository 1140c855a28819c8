// Package emu starts the Redshift emulator in-process: a Postgres-wire
// server that accepts Redshift SQL, runs it on a real Postgres and answers
// like Redshift, including its errors. It is a test tool; see README.md for
// what it emulates and where it differs from Redshift.
package emu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/redms/redms/services/rsemu/internal/s3copy"
	"github.com/redms/redms/services/rsemu/internal/server"
	"github.com/redms/redms/services/rsemu/internal/translate"
)

// Config configures the emulator.
type Config struct {
	Listen            string // e.g. 127.0.0.1:0 or :5439
	PostgresURL       string // backing Postgres; a client's database name replaces the URL's
	S3Endpoint        string // where COPY reads s3:// URLs (path-style); empty = AWS
	S3Region          string
	S3AccessKeyID     string // used unless a COPY names its own keys
	S3SecretAccessKey string
	// Isolation is the isolation level of sessions of a database that has
	// none set by ALTER DATABASE … ISOLATION LEVEL: "snapshot" (the
	// default, as for new Redshift clusters) or "serializable".
	Isolation string
	Logger    *slog.Logger
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.PostgresURL == "" {
		return errors.New("postgres url is required")
	}
	if c.Listen == "" {
		return errors.New("listen address is required")
	}
	switch c.Isolation {
	case "", translate.Snapshot, translate.Serializable:
	default:
		return fmt.Errorf("isolation %q: want %s or %s", c.Isolation, translate.Snapshot, translate.Serializable)
	}
	return nil
}

// Server is a running emulator.
type Server struct {
	ln     net.Listener
	srv    *server.Server
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	once   sync.Once
}

// Start listens on cfg.Listen and serves until Close or ctx ends.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rsemu config: %w", err)
	}
	srv, err := server.New(server.Config{
		PostgresURL: cfg.PostgresURL,
		S3: s3copy.Config{Endpoint: cfg.S3Endpoint, Region: cfg.S3Region,
			AccessKeyID: cfg.S3AccessKeyID, SecretAccessKey: cfg.S3SecretAccessKey},
		Isolation: cfg.Isolation,
		Logger:    cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Server{ln: ln, srv: srv, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = srv.Serve(ctx, ln)
	}()
	go func() {
		<-ctx.Done()
		s.shutdown()
	}()
	return s, nil
}

// Addr is the address clients connect to (host:port).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Done is closed when the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Close stops accepting, disconnects every client and waits.
func (s *Server) Close() error {
	s.cancel()
	s.shutdown()
	<-s.done
	return s.err
}

func (s *Server) shutdown() {
	s.once.Do(func() {
		s.srv.Close()
		s.ln.Close()
	})
}
