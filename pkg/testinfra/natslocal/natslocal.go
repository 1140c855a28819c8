// Package natslocal runs an embedded nats-server with JetStream on a file
// store, listening on 127.0.0.1, and can stop it and start it again on the
// same port and store — what a broker restart looks like to its clients.
//
// It is for tests (through pkg/testenv) and the local demo stack; production
// runs a real NATS cluster.
package natslocal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// defaultReadyTimeout bounds the wait for a server to accept clients.
const defaultReadyTimeout = 30 * time.Second

// Options configure a server.
type Options struct {
	// Port to listen on at 127.0.0.1. Zero: a free port, kept across Restart.
	Port int
	// StoreDir is JetStream's file store. Empty: a new temp dir that Remove
	// deletes.
	StoreDir string
	// Logger receives the server's log lines. Nil: the server logs nothing.
	Logger *slog.Logger
	// MaxPayload is the largest message body the server accepts. Zero: the
	// server's default (1 MiB), as a production server without tuning.
	MaxPayload int32

	// cluster makes the server a node of a Cluster (StartCluster).
	cluster *clusterNode
}

// clusterNode is what a node of a Cluster adds to a single server.
type clusterNode struct {
	name, clusterName string
	port              int      // cluster (route) listen port, fixed across restarts
	routes            []string // host:port of each route to another node
}

// Server is an embedded nats-server with JetStream.
type Server struct {
	opts    Options
	ownsDir bool
	port    int
	mu      sync.Mutex
	srv     *server.Server
}

// Start starts a server and waits until it accepts clients.
func Start(ctx context.Context, opts Options) (*Server, error) {
	s := &Server{opts: opts, port: opts.Port}
	if s.opts.StoreDir == "" {
		dir, err := os.MkdirTemp("", "redms-nats-")
		if err != nil {
			return nil, fmt.Errorf("create jetstream store dir: %w", err)
		}
		s.opts.StoreDir, s.ownsDir = dir, true
	}
	if err := s.start(ctx); err != nil {
		if s.ownsDir {
			_ = os.RemoveAll(s.opts.StoreDir)
		}
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("start nats: already running")
	}
	port := s.port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	so := &server.Options{
		ServerName: "redms-natslocal",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   s.opts.StoreDir,
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: s.opts.MaxPayload,
	}
	if c := s.opts.cluster; c != nil {
		c.apply(so)
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return fmt.Errorf("configure nats server: %w", err)
	}
	// The server reports fatal start errors (such as a taken port) only
	// through its logger; the adapter turns them into an error here.
	logger := s.opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	adapter := &slogAdapter{l: logger, fatal: make(chan string, 1)}
	srv.SetLoggerV2(adapter, false, false, false)
	go srv.Start()
	if err := waitReady(ctx, srv, adapter.fatal); err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("start nats on port %d: %w", s.port, err)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return errors.New("start nats: jetstream is not enabled")
	}
	s.port = srv.Addr().(*net.TCPAddr).Port
	s.srv = srv
	return nil
}

// waitReady waits until srv accepts clients, the server reports a fatal
// error, or ctx (or defaultReadyTimeout when ctx has no deadline) ends.
func waitReady(ctx context.Context, srv *server.Server, fatal <-chan string) error {
	ctx, cancel := context.WithTimeout(ctx, defaultReadyTimeout)
	defer cancel()
	for {
		if srv.ReadyForConnections(20 * time.Millisecond) {
			return nil
		}
		select {
		case msg := <-fatal:
			return errors.New(msg)
		case <-ctx.Done():
			return fmt.Errorf("not accepting clients: %w", ctx.Err())
		default:
		}
	}
}

// URL is nats://127.0.0.1:PORT; it stays the same across Restart.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// Port is the port the server listens on.
func (s *Server) Port() int { return s.port }

// StoreDir is JetStream's file store.
func (s *Server) StoreDir() string { return s.opts.StoreDir }

// Running reports whether the server is started and not stopped.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv != nil
}

// Stop shuts the server down and waits until it has. Clients see their
// connections close. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Shutdown()
	srv.WaitForShutdown()
}

// Restart stops the server if it runs and starts it again on the same port
// and store; JetStream recovers its streams from the store.
func (s *Server) Restart(ctx context.Context) error {
	s.Stop()
	if err := s.start(ctx); err != nil {
		return fmt.Errorf("restart nats: %w", err)
	}
	return nil
}

// Remove stops the server and, when Start created the store dir, deletes it.
func (s *Server) Remove() error {
	s.Stop()
	if s.ownsDir {
		if err := os.RemoveAll(s.opts.StoreDir); err != nil {
			return fmt.Errorf("remove jetstream store dir: %w", err)
		}
	}
	return nil
}

// slogAdapter writes nats-server log lines to a slog.Logger and hands the
// first fatal one to the starter.
type slogAdapter struct {
	l     *slog.Logger
	fatal chan string
}

var _ server.Logger = (*slogAdapter)(nil)

func (a *slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	a.l.Error(msg)
	select {
	case a.fatal <- msg:
	default:
	}
}
func (a *slogAdapter) Errorf(format string, v ...any) { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Debugf(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Tracef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }

// server is the running server, nil when stopped.
func (s *Server) server() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}
