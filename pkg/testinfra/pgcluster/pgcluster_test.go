package pgcluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func startCluster(t *testing.T) *Cluster {
	t.Helper()
	bin, err := FindBinDir()
	if err != nil {
		t.Fatalf("%v: install the Postgres server binaries: apt-get install postgresql", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{BinDir: bin})
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Remove(context.Background()); err != nil {
			t.Errorf("remove cluster: %v", err)
		}
		if _, err := os.Stat(c.Dir()); !os.IsNotExist(err) {
			t.Errorf("cluster dir %s still there after Remove (stat: %v)", c.Dir(), err)
		}
	})
	return c
}

func queryString(t *testing.T, url, sql string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return s
}

// slotChanges waits until the slot has a change containing want (commits
// reach decoding when the WAL writer flushes them) and returns all changes.
func slotChanges(t *testing.T, url, slot, want string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var changes string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(data, E'\n'), '') FROM pg_logical_slot_peek_changes($1, NULL, NULL)`, slot).Scan(&changes); err != nil {
			t.Fatalf("peek slot: %v", err)
		}
		if strings.Contains(changes, want) {
			return changes
		}
	}
	t.Fatalf("slot changes:\n%s\nwant a line containing %q", changes, want)
	return ""
}

func TestClusterLogicalDecodingAndRestart(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()

	if got := queryString(t, c.URL("postgres"), "SHOW wal_level"); got != "logical" {
		t.Fatalf("wal_level = %q, want logical", got)
	}
	if got := queryString(t, c.URL("postgres"), "SHOW max_replication_slots"); got != "20" {
		t.Fatalf("max_replication_slots = %q, want 20", got)
	}
	url, err := c.CreateDatabase(ctx, "shop.db")
	if err != nil {
		t.Fatal(err)
	}
	if want := c.URL("shop.db"); url != want {
		t.Fatalf("CreateDatabase URL = %q, want %q", url, want)
	}
	for _, sql := range []string{
		"CREATE TABLE items (id int PRIMARY KEY, name text)",
		"SELECT pg_create_logical_replication_slot('s1', 'test_decoding')",
		"INSERT INTO items VALUES (1, 'one')",
	} {
		if err := c.Exec(ctx, "shop.db", sql); err != nil {
			t.Fatal(err)
		}
	}
	slotChanges(t, url, "s1", `table public.items: INSERT: id[integer]:1 name[text]:'one'`)

	port := c.Port()
	for _, mode := range []StopMode{Fast, Immediate} {
		if err := c.Stop(ctx, mode); err != nil {
			t.Fatalf("stop %s: %v", mode, err)
		}
		if c.Running() {
			t.Fatalf("Running() after Stop(%s)", mode)
		}
		if err := c.Exec(ctx, "shop.db", "SELECT 1"); err == nil {
			t.Fatalf("Exec succeeded on a cluster stopped with %s", mode)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatalf("restart after %s: %v", mode, err)
		}
		if c.Port() != port {
			t.Fatalf("port changed across restart: %d → %d", port, c.Port())
		}
		// The slot and its pending change survive the restart.
		slotChanges(t, url, "s1", "INSERT: id[integer]:1")
	}
	if err := c.Start(ctx); err == nil {
		t.Fatal("Start on a running cluster succeeded")
	}
}

func TestStartReusesDir(t *testing.T) {
	bin, err := FindBinDir()
	if err != nil {
		t.Fatalf("%v: install the Postgres server binaries: apt-get install postgresql", err)
	}
	ctx := context.Background()
	c := startCluster(t)
	if err := c.Exec(ctx, "postgres", "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx, Fast); err != nil {
		t.Fatal(err)
	}
	// A second Cluster on the same Dir reuses the data (no initdb).
	c2, err := Start(ctx, Options{BinDir: bin, Dir: c.Dir(), Settings: map[string]string{"application_name": "'x'"}})
	if err != nil {
		t.Fatalf("start on existing dir: %v", err)
	}
	defer func() { _ = c2.Stop(ctx, Immediate) }()
	if got := queryString(t, c2.URL("postgres"), "SELECT v::text FROM kept"); got != "42" {
		t.Fatalf("kept = %q, want 42", got)
	}
	conf, err := os.ReadFile(filepath.Join(c2.DataDir(), "postgresql.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(conf), "include 'redms.conf'"); n != 1 {
		t.Fatalf("postgresql.conf includes redms.conf %d times, want 1", n)
	}
}

func TestStartRequiresBinDir(t *testing.T) {
	if _, err := Start(context.Background(), Options{}); err == nil {
		t.Fatal("Start without BinDir succeeded")
	}
	if _, err := Start(context.Background(), Options{BinDir: t.TempDir()}); err == nil {
		t.Fatal("Start with an empty BinDir succeeded")
	}
}

func TestVersionOf(t *testing.T) {
	for dir, want := range map[string]int{
		"/usr/lib/postgresql/15/bin": 15,
		"/usr/lib/postgresql/9/bin":  9,
		"/usr/lib/postgresql/x/bin":  -1,
	} {
		if got := versionOf(dir); got != want {
			t.Errorf("versionOf(%q) = %d, want %d", dir, got, want)
		}
	}
}
