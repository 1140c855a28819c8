// Package server is the emulator's Postgres-wire front: it accepts
// Redshift clients (simple and extended query protocol, no TLS, trust
// auth), translates each statement with package translate, runs it on a
// backing Postgres session of its own, and answers like Redshift.
package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redms/redms/services/rsemu/internal/s3copy"
	"github.com/redms/redms/services/rsemu/internal/translate"
)

// Config configures a Server.
type Config struct {
	PostgresURL string        // backing Postgres; the client's database name replaces its database
	S3          s3copy.Config // where COPY reads s3:// URLs
	Logger      *slog.Logger
}

// Server accepts Redshift clients.
type Server struct {
	cfg     Config
	log     *slog.Logger
	objects *s3copy.Store

	mu       sync.Mutex
	pools    map[string]*pgxpool.Pool // per database: the emulator's own connections
	prepared map[string]bool          // databases whose rsemu schema exists
	sessions map[uint32]*cancelTarget // client-visible pid → backend cancel key
	conns    map[net.Conn]struct{}
	nextPID  uint32
	closed   bool
	wg       sync.WaitGroup
}

type cancelTarget struct {
	secret    []byte
	pgPID     uint32
	pgSecret  []byte
	pgNetwork string
	pgAddr    string
}

// New returns a Server; call Serve to accept clients.
func New(cfg Config) (*Server, error) {
	if _, err := pgconn.ParseConfig(cfg.PostgresURL); err != nil {
		return nil, fmt.Errorf("parse postgres url: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	store, err := s3copy.NewStore(cfg.S3)
	if err != nil {
		return nil, err
	}
	return &Server{
		cfg: cfg, log: log, objects: store,
		pools: map[string]*pgxpool.Pool{}, prepared: map[string]bool{},
		sessions: map[uint32]*cancelTarget{}, conns: map[net.Conn]struct{}{},
		nextPID: 1000,
	}, nil
}

// Serve accepts clients on ln until ctx ends or Close is called.
func (srv *Server) Serve(ctx context.Context, ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			srv.mu.Lock()
			closed := srv.closed
			srv.mu.Unlock()
			if closed || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		srv.mu.Lock()
		if srv.closed {
			srv.mu.Unlock()
			c.Close()
			return nil
		}
		srv.conns[c] = struct{}{}
		srv.wg.Add(1)
		srv.mu.Unlock()
		go func() {
			defer srv.wg.Done()
			defer func() {
				srv.mu.Lock()
				delete(srv.conns, c)
				srv.mu.Unlock()
			}()
			s := &session{srv: srv, log: srv.log, client: c, be: pgproto3.NewBackend(c, c),
				stmts: map[string]prepared{}, portals: map[string]*translate.Stmt{}}
			if err := s.run(ctx); err != nil {
				srv.log.Warn("session ended", "err", err)
			}
			srv.unregister(s.pid)
		}()
	}
}

// Close disconnects every client and closes the emulator's own pools.
func (srv *Server) Close() {
	srv.mu.Lock()
	srv.closed = true
	for c := range srv.conns {
		c.Close()
	}
	srv.mu.Unlock()
	srv.wg.Wait()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for _, p := range srv.pools {
		p.Close()
	}
	srv.pools = map[string]*pgxpool.Pool{}
}

// track registers a backend connection to close on shutdown; false when
// the server is closed already.
func (srv *Server) track(c net.Conn) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.closed {
		return false
	}
	srv.conns[c] = struct{}{}
	return true
}

func (srv *Server) untrack(c net.Conn) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	delete(srv.conns, c)
}

// register assigns the session a client-visible pid and secret, and
// remembers the backend's cancel key.
func (srv *Server) register(s *session, pgPID uint32, pgSecret []byte) []byte {
	secret := make([]byte, 4)
	_, _ = rand.Read(secret)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.nextPID++
	s.pid = srv.nextPID
	addr := s.pg.RemoteAddr()
	srv.sessions[s.pid] = &cancelTarget{secret: secret, pgPID: pgPID, pgSecret: pgSecret, pgNetwork: addr.Network(), pgAddr: addr.String()}
	return secret
}

func (srv *Server) unregister(pid uint32) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	delete(srv.sessions, pid)
}

// cancel forwards a client's cancel request to the session's backend.
func (srv *Server) cancel(pid uint32, secret []byte) {
	srv.mu.Lock()
	t := srv.sessions[pid]
	srv.mu.Unlock()
	if t == nil || string(t.secret) != string(secret) {
		return
	}
	c, err := net.Dial(t.pgNetwork, t.pgAddr)
	if err != nil {
		srv.log.Warn("forward cancel request", "err", err)
		return
	}
	defer c.Close()
	buf := make([]byte, 12, 12+len(t.pgSecret))
	binary.BigEndian.PutUint32(buf[0:], uint32(12+len(t.pgSecret)))
	binary.BigEndian.PutUint32(buf[4:], 80877102)
	binary.BigEndian.PutUint32(buf[8:], t.pgPID)
	buf = append(buf, t.pgSecret...)
	if _, err := c.Write(buf); err != nil {
		srv.log.Warn("forward cancel request", "err", err)
	}
}

// pool is the emulator's own connection pool to database db: it prepares
// the database and writes stl_load_errors outside client transactions.
func (srv *Server) pool(ctx context.Context, db string) (*pgxpool.Pool, error) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if p := srv.pools[db]; p != nil {
		return p, nil
	}
	cfg, err := pgxpool.ParseConfig(srv.cfg.PostgresURL)
	if err != nil {
		return nil, fmt.Errorf("parse postgres url: %w", err)
	}
	if db != "" {
		cfg.ConnConfig.Database = db
	}
	cfg.MaxConns = 4
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool for %s: %w", db, err)
	}
	srv.pools[db] = p
	return p, nil
}

// setupSQL creates the emulator's objects in a backing database.
const setupSQL = `
SELECT pg_advisory_xact_lock(72657365);
CREATE SCHEMA IF NOT EXISTS rsemu;
CREATE TABLE IF NOT EXISTS rsemu.stl_load_errors (
	userid integer, slice integer, tbl integer, starttime timestamp, session integer, query integer,
	filename varchar(256), line_number bigint, colname varchar(127), type varchar(10), col_length varchar(10),
	position integer, raw_line varchar(1024), raw_field_value varchar(1024), err_code integer, err_reason varchar(100));
CREATE SEQUENCE IF NOT EXISTS rsemu.query_id;
CREATE OR REPLACE FUNCTION rsemu.pg_last_copy_count() RETURNS bigint LANGUAGE sql STABLE
	AS $$SELECT coalesce(nullif(current_setting('rsemu.last_copy_count', true), ''), '0')::bigint$$;
`

// prepareDatabase creates schema rsemu and its objects once per database.
func (srv *Server) prepareDatabase(ctx context.Context, db string) error {
	srv.mu.Lock()
	done := srv.prepared[db]
	srv.mu.Unlock()
	if done {
		return nil
	}
	p, err := srv.pool(ctx, db)
	if err != nil {
		return err
	}
	tx, err := p.Begin(ctx)
	if err != nil {
		return fmt.Errorf("prepare database %s: %w", db, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, setupSQL); err != nil {
		return fmt.Errorf("prepare database %s: %w", db, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("prepare database %s: %w", db, err)
	}
	srv.mu.Lock()
	srv.prepared[db] = true
	srv.mu.Unlock()
	return nil
}
