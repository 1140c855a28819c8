package testenv

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redms/redms/pkg/testinfra/pgcluster"
)

// pgTimeout bounds each Postgres start, stop and statement run by this package.
const pgTimeout = 2 * time.Minute

var (
	binDirOnce sync.Once
	binDir     string
	binDirErr  error
)

// Postgres is an ephemeral cluster: wal_level=logical, 20 replication slots
// and WAL senders, superuser "postgres" with trust auth, on 127.0.0.1.
type Postgres struct {
	c *pgcluster.Cluster
}

// StartPostgres starts a new cluster and removes it when the test ends.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	binDirOnce.Do(func() { binDir, binDirErr = pgcluster.FindBinDir() })
	if binDirErr != nil {
		t.Fatalf("%v: install the Postgres server binaries: apt-get install postgresql", binDirErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{BinDir: binDir})
	if err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
		defer cancel()
		if err := c.Remove(ctx); err != nil {
			t.Errorf("remove postgres cluster: %v", err)
		}
	})
	return &Postgres{c: c}
}

// Cluster is the underlying cluster.
func (p *Postgres) Cluster() *pgcluster.Cluster { return p.c }

// URL is postgres://postgres@127.0.0.1:PORT/db?sslmode=disable.
func (p *Postgres) URL(db string) string { return p.c.URL(db) }

// Host is 127.0.0.1.
func (p *Postgres) Host() string { return p.c.Host() }

// Port is the cluster's TCP port; it stays the same across Stop and Start.
func (p *Postgres) Port() int { return p.c.Port() }

// Addr is host:port, e.g. for StartProxy.
func (p *Postgres) Addr() string { return net.JoinHostPort(p.c.Host(), strconv.Itoa(p.c.Port())) }

// ReplicationURL is URL(db) with replication=database, for a logical
// replication connection (pglogrepl).
func (p *Postgres) ReplicationURL(db string) string { return p.c.URL(db) + "&replication=database" }

// PID is the postmaster's process id, 0 while stopped.
func (p *Postgres) PID() int { return p.c.PID() }

// BinDir holds the server binaries (pg_recvlogical, psql, ...).
func (p *Postgres) BinDir() string { return p.c.BinDir() }

// LogFile is the server's log.
func (p *Postgres) LogFile() string { return p.c.LogFile() }

// CreateDatabase creates database name and returns its URL.
func (p *Postgres) CreateDatabase(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	url, err := p.c.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return url
}

// Exec runs sql in database db (several statements run in one implicit
// transaction) and fails the test on error.
func (p *Postgres) Exec(t testing.TB, db string, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	if err := p.c.Exec(ctx, db, sql); err != nil {
		t.Fatalf("%v\nsql: %s", err, sql)
	}
}

// Stop shuts the server down cleanly (pg_ctl -m fast).
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	p.stop(t, pgcluster.Fast)
}

// Crash kills the server without a clean shutdown (pg_ctl -m immediate); the
// next Start runs crash recovery.
func (p *Postgres) Crash(t testing.TB) {
	t.Helper()
	p.stop(t, pgcluster.Immediate)
}

func (p *Postgres) stop(t testing.TB, mode pgcluster.StopMode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	if err := p.c.Stop(ctx, mode); err != nil {
		t.Fatalf("%v", err)
	}
}

// Restart stops the server cleanly (pg_ctl restart -m fast) and starts it
// again on the same port and data; every client is disconnected.
func (p *Postgres) Restart(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	if err := p.c.Restart(ctx, pgcluster.Fast); err != nil {
		t.Fatalf("%v", err)
	}
}

// Start starts a stopped cluster again on the same port and data.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	if err := p.c.Start(ctx); err != nil {
		t.Fatalf("%v", err)
	}
}

// Pool connects a pool to url and closes it when the test ends.
func Pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(pool.Close)
	return pool
}
