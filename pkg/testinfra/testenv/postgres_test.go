package testenv

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestPostgres(t *testing.T) {
	pg := StartPostgres(t)
	url := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app", "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")

	count := func() int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatalf("count: %v", err)
		}
		return n
	}
	if n := count(); n != 2 {
		t.Fatalf("count = %d, want 2", n)
	}
	pg.Stop(t)
	pg.Start(t)
	if n := count(); n != 2 {
		t.Fatalf("count after restart = %d, want 2", n)
	}
	pg.Crash(t)
	pg.Start(t)
	if n := count(); n != 2 {
		t.Fatalf("count after crash = %d, want 2", n)
	}
	// A replication connection works through ReplicationURL.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := pgconn.Connect(ctx, pg.ReplicationURL("app"))
	if err != nil {
		t.Fatalf("replication connection: %v", err)
	}
	res := rc.Exec(ctx, "IDENTIFY_SYSTEM")
	if _, err := res.ReadAll(); err != nil {
		t.Fatalf("IDENTIFY_SYSTEM: %v", err)
	}
	rc.Close(ctx)
	if pg.PID() == 0 {
		t.Fatal("PID() = 0 for a running cluster")
	}
	if _, err := os.Stat(filepath.Join(pg.BinDir(), "pg_recvlogical")); err != nil {
		t.Fatalf("BinDir has no pg_recvlogical: %v", err)
	}
}
