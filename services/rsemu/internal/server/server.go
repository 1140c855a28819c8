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
	// Isolation is the sessions' isolation level unless ALTER DATABASE …
	// ISOLATION LEVEL set one: translate.Snapshot ("" too) or
	// translate.Serializable.
	Isolation string
	Logger    *slog.Logger
}

// Server accepts Redshift clients.
type Server struct {
	cfg     Config
	log     *slog.Logger
	objects *s3copy.Store

	mu       sync.Mutex
	pools    map[string]*pgxpool.Pool // per database: the emulator's own connections
	prepared map[string]bool          // databases whose rsemu schema exists
	isolated map[string]string        // database → isolation level set by ALTER DATABASE
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
		pools: map[string]*pgxpool.Pool{}, prepared: map[string]bool{}, isolated: map[string]string{},
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
				stmts: map[string]prepared{}, portals: map[string]*translate.Stmt{}, txPortals: map[string]bool{}}
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

// setIsolation records the isolation level of database db's new sessions.
func (srv *Server) setIsolation(db, level string) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.isolated[db] = level
}

// backendIsolation is the Postgres isolation level that emulates database
// db's: Redshift's SNAPSHOT is Postgres' REPEATABLE READ (snapshot
// isolation, a write to a row changed since the snapshot fails),
// SERIALIZABLE is SERIALIZABLE.
func (srv *Server) backendIsolation(db string) string {
	srv.mu.Lock()
	level, ok := srv.isolated[db]
	srv.mu.Unlock()
	if !ok {
		level = srv.cfg.Isolation
	}
	if level == translate.Serializable {
		return "serializable"
	}
	return "repeatable read"
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
CREATE OR REPLACE FUNCTION rsemu.json_parse(text) RETURNS jsonb LANGUAGE sql IMMUTABLE STRICT AS $$SELECT $1::jsonb$$;
CREATE OR REPLACE FUNCTION rsemu.from_hex(text) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS $$SELECT decode($1, 'hex')$$;
CREATE OR REPLACE FUNCTION rsemu.strtol_parse(s text, base integer) RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
	v numeric := 0;
	neg boolean := false;
	i integer := 1;
	d integer;
	c text;
BEGIN
	IF base < 2 OR base > 36 THEN
		RAISE EXCEPTION 'Invalid base % for strtol: the base must be between 2 and 36', base USING ERRCODE = '22023';
	END IF;
	s := ltrim(s, E' \t\n\r\f' || chr(11));
	IF left(s, 1) IN ('+', '-') THEN
		neg := left(s, 1) = '-';
		s := substr(s, 2);
	END IF;
	IF base = 16 AND lower(left(s, 2)) = '0x' THEN
		s := substr(s, 3);
	END IF;
	WHILE i <= length(s) LOOP
		c := lower(substr(s, i, 1));
		d := CASE WHEN c BETWEEN '0' AND '9' THEN ascii(c) - 48 WHEN c BETWEEN 'a' AND 'z' THEN ascii(c) - 87 ELSE 99 END;
		EXIT WHEN d >= base;
		v := v * base + d;
		IF v > 9223372036854775808 THEN
			RAISE EXCEPTION 'strtol: value out of range for a 64-bit integer' USING ERRCODE = '22003';
		END IF;
		i := i + 1;
	END LOOP;
	IF neg THEN
		v := -v;
	END IF;
	IF v > 9223372036854775807 THEN
		RAISE EXCEPTION 'strtol: value out of range for a 64-bit integer' USING ERRCODE = '22003';
	END IF;
	RETURN v::bigint;
END$$;
CREATE OR REPLACE FUNCTION rsemu.strtol(text, integer) RETURNS bigint LANGUAGE sql IMMUTABLE STRICT
	AS $$SELECT CASE WHEN $2 = 16 AND $1 ~ '^[0-9a-f]{1,15}$' THEN ('x' || lpad($1, 16, '0'))::bit(64)::bigint ELSE rsemu.strtol_parse($1, $2) END$$;
CREATE OR REPLACE FUNCTION rsemu.from_varbyte(bytea, text) RETURNS varchar LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
	CASE lower($2)
	WHEN 'hex' THEN RETURN encode($1, 'hex');
	WHEN 'binary' THEN RETURN coalesce((SELECT string_agg(get_byte($1, i)::bit(8)::text, '' ORDER BY i) FROM generate_series(0, length($1) - 1) i), '');
	WHEN 'utf8', 'utf-8' THEN RETURN convert_from($1, 'UTF8');
	ELSE RAISE EXCEPTION 'Invalid format % for from_varbyte: use hex, binary, utf8 or utf-8', $2 USING ERRCODE = '22023';
	END CASE;
END$$;
` + catalogSQL + blankInsensitiveSQL

// catalogSQL keeps what Redshift records of a table and Postgres has no
// place for (translate.CreateTable): its distribution style and sort key
// kind, each column's encoding, DISTKEY and SORTKEY position, and the
// columns of its (unenforced) PRIMARY KEY, UNIQUE and FOREIGN KEY
// constraints, keyed by oid and attnum (stable across renames). pg_table_def and svv_table_info are
// views over it, as Redshift's show them (a subset of their columns).
const catalogSQL = `
CREATE TABLE IF NOT EXISTS rsemu.table_attrs (relid oid NOT NULL, diststyle text NOT NULL, sortkind text NOT NULL);
CREATE TABLE IF NOT EXISTS rsemu.column_attrs (relid oid NOT NULL, attnum int2 NOT NULL, encoding text NOT NULL, distkey boolean NOT NULL, sortkey integer NOT NULL);
CREATE TABLE IF NOT EXISTS rsemu.column_constraints (relid oid NOT NULL, attnum int2 NOT NULL);
CREATE OR REPLACE VIEW rsemu.pg_table_def AS
SELECT n.nspname AS schemaname, c.relname AS tablename, a.attname AS "column",
	CASE WHEN a.atttypid = 'jsonb'::regtype THEN 'super'
		WHEN a.atttypid = 'bytea'::regtype THEN coalesce((SELECT 'varbyte(' || substring(k.conname FROM '^rsemu_vb([0-9]+)_') || ')' FROM pg_constraint k
			WHERE k.conrelid = a.attrelid AND k.conkey = ARRAY[a.attnum] AND k.conname LIKE 'rsemu\_vb%' LIMIT 1), 'varbyte')
		ELSE format_type(a.atttypid, a.atttypmod) END AS type,
	coalesce(ca.encoding, CASE WHEN a.atttypid IN ('bool'::regtype, 'float4'::regtype, 'float8'::regtype) THEN 'none'
		WHEN a.atttypid IN ('bpchar'::regtype, 'varchar'::regtype, 'text'::regtype, 'bytea'::regtype) THEN 'lzo'
		WHEN a.atttypid = 'jsonb'::regtype THEN 'none' ELSE 'az64' END) AS encoding, coalesce(ca.distkey, false) AS distkey, coalesce(ca.sortkey, 0) AS sortkey, a.attnotnull AS notnull
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN rsemu.column_attrs ca ON ca.relid = c.oid AND ca.attnum = a.attnum
WHERE c.relkind = 'r' AND n.nspname NOT IN ('rsemu', 'pg_catalog', 'information_schema') AND pg_table_is_visible(c.oid);
CREATE OR REPLACE VIEW rsemu.svv_table_info AS
SELECT n.nspname::text AS schema, c.relname::text AS "table", c.oid::integer AS table_id,
	CASE t.diststyle
		WHEN 'key' THEN 'KEY(' || (SELECT a.attname FROM rsemu.column_attrs ca JOIN pg_attribute a ON a.attrelid = ca.relid AND a.attnum = ca.attnum
			WHERE ca.relid = c.oid AND ca.distkey AND NOT a.attisdropped) || ')'
		WHEN 'even' THEN 'EVEN' WHEN 'all' THEN 'ALL' ELSE 'AUTO(EVEN)' END AS diststyle,
	CASE WHEN t.sortkind = 'auto' THEN 'AUTO(SORTKEY)' ELSE (SELECT a.attname::text FROM rsemu.column_attrs ca JOIN pg_attribute a ON a.attrelid = ca.relid AND a.attnum = ca.attnum
		WHERE ca.relid = c.oid AND ca.sortkey = 1 AND NOT a.attisdropped) END AS sortkey1,
	(SELECT count(*) FROM rsemu.column_attrs ca JOIN pg_attribute a ON a.attrelid = ca.relid AND a.attnum = ca.attnum
		WHERE ca.relid = c.oid AND ca.sortkey > 0 AND NOT a.attisdropped)::integer AS sortkey_num
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN rsemu.table_attrs t ON t.relid = c.oid
WHERE c.relkind = 'r' AND n.nspname NOT IN ('rsemu', 'pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
	AND (n.nspname NOT LIKE 'pg_temp%' OR n.oid = pg_my_temp_schema());
`

// blankInsensitiveSQL gives VARCHAR = and <> Redshift's meaning: trailing
// blanks are insignificant ('x ' = 'x'). Postgres compares varchar with
// text's operators; an operator on (varchar, varchar) itself is an exact
// match, so the parser prefers it for two VARCHAR columns and for a VARCHAR
// column against a literal or parameter. It lives in pg_catalog, which every
// search path includes, and is an SQL function the planner inlines to
// rtrim(a) = rtrim(b), so joins still hash or merge. Values keep their
// blanks; a comparison with an explicit ::text cast uses text's operator.
const blankInsensitiveSQL = `
DO $do$ BEGIN
IF NOT EXISTS (SELECT 1 FROM pg_operator WHERE oprname = '=' AND oprleft = 'varchar'::regtype AND oprright = 'varchar'::regtype) THEN
	CREATE FUNCTION pg_catalog.rsemu_varchar_eq(varchar, varchar) RETURNS boolean LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
		AS $f$SELECT rtrim($1, ' ') = rtrim($2, ' ')$f$;
	CREATE FUNCTION pg_catalog.rsemu_varchar_ne(varchar, varchar) RETURNS boolean LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
		AS $f$SELECT rtrim($1, ' ') <> rtrim($2, ' ')$f$;
	CREATE OPERATOR pg_catalog.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = pg_catalog.rsemu_varchar_eq,
		COMMUTATOR = OPERATOR(pg_catalog.=), NEGATOR = OPERATOR(pg_catalog.<>));
	CREATE OPERATOR pg_catalog.<> (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = pg_catalog.rsemu_varchar_ne,
		COMMUTATOR = OPERATOR(pg_catalog.<>), NEGATOR = OPERATOR(pg_catalog.=));
END IF;
END $do$;
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
