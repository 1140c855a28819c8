package pgcluster

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// A logical replication client that never confirms would hold a fast
// shutdown for wal_sender_timeout (60s); Stop must not wait for it.
func TestFastStopWithSilentReplicationClient(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	for _, sql := range []string{
		"CREATE TABLE x (id int PRIMARY KEY)",
		"SELECT pg_create_logical_replication_slot('s', 'test_decoding')",
	} {
		if err := c.Exec(ctx, "postgres", sql); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := pgconn.Connect(ctx, c.URL("postgres")+"&replication=database")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close(ctx)
	if err := pglogrepl.StartReplication(ctx, rc, "s", 0, pglogrepl.StartReplicationOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "postgres", "INSERT INTO x VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	// Half of wal_sender_timeout: a stop that waited for the walsender
	// would be killed at this deadline and report it.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Stop(sctx, Fast); err != nil {
		t.Fatalf("fast stop with a silent replication client: %v", err)
	}
	// The slot survived and still holds the unconfirmed change.
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	slotChanges(t, c.URL("postgres"), "s", "INSERT: id[integer]:1")
}

// Restart keeps the port, the data and the slot, and gives a new server
// process; a connection from before it is gone.
func TestRestartKeepsPortAndData(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	for _, sql := range []string{
		"CREATE TABLE x (id int PRIMARY KEY)",
		"SELECT pg_create_logical_replication_slot('r', 'test_decoding')",
		"INSERT INTO x VALUES (7)",
	} {
		if err := c.Exec(ctx, "postgres", sql); err != nil {
			t.Fatal(err)
		}
	}
	before, port := c.PID(), c.Port()
	old, err := pgconn.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close(ctx)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Restart(rctx, Fast); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if c.PID() == before || c.PID() == 0 || c.Port() != port {
		t.Fatalf("after restart pid %d (was %d), port %d (was %d): want a new server on the same port", c.PID(), before, c.Port(), port)
	}
	if err := old.Exec(ctx, "SELECT 1").Close(); err == nil {
		t.Fatal("a connection from before the restart still works")
	}
	slotChanges(t, c.URL("postgres"), "r", "INSERT: id[integer]:7")
}
