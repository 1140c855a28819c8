package emu_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redms/redms/services/rsemu/emu"
)

// readWriteCycle runs two transactions that each read the table the other
// writes, and returns the second COMMIT's error: serializable isolation
// refuses the cycle, snapshot isolation commits it.
func readWriteCycle(t *testing.T, e *env, db, prefix string) error {
	t.Helper()
	c1, c2 := e.connect(t, db), e.connect(t, db)
	a, b := prefix+"a", prefix+"b"
	mustExec(t, c1, "CREATE TABLE "+a+" (id INT)")
	mustExec(t, c1, "CREATE TABLE "+b+" (id INT)")
	mustExec(t, c1, "BEGIN")
	mustExec(t, c2, "BEGIN")
	wantRows(t, c1, "0", "SELECT count(*) FROM "+a)
	wantRows(t, c2, "0", "SELECT count(*) FROM "+b)
	mustExec(t, c1, "INSERT INTO "+b+" VALUES (1)")
	mustExec(t, c2, "INSERT INTO "+a+" VALUES (1)")
	mustExec(t, c1, "COMMIT")
	_, err := c2.Exec(ctxT(t), "COMMIT")
	return err
}

func want1023(t *testing.T, err error, what string) {
	t.Helper()
	pe := checkErr(t, err, "40001", "1023", what)
	if !strings.Contains(pe.Detail, "Serializable isolation violation") {
		t.Fatalf("%s: detail %q", what, pe.Detail)
	}
}

// backing opens a connection to database db of the backing Postgres.
func (e *env) backing(t *testing.T, db string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctxT(t), e.pg.URL(db))
	if err != nil {
		t.Fatalf("connect to backing database: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// blocked runs sql on c in the background and waits until the backing
// database shows a session waiting for a lock; it fails the test if sql
// finishes first. The returned channel yields sql's error once it ends.
func (e *env) blocked(t *testing.T, db string, c *pgx.Conn, sql string, args ...any) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), sql, args...)
		done <- err
	}()
	pg := e.backing(t, db)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("%s finished (err %v) while another transaction holds the table's lock: want it to wait", sql, err)
		default:
		}
		var n int
		if err := pg.QueryRow(ctxT(t), "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return done
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s neither finished nor waits for a lock", sql)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func finished(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still waits after the lock holder committed", what)
		return nil
	}
}

// TestIsolation: SNAPSHOT isolation by default, SERIALIZABLE on request,
// table write locks held until commit, LOCK.
func TestIsolation(t *testing.T) {
	e := startEnv(t)
	t.Run("snapshot by default: a read-write cycle commits", func(t *testing.T) {
		t.Parallel()
		if err := readWriteCycle(t, e, e.db(t), ""); err != nil {
			t.Fatalf("second COMMIT under snapshot isolation: %v", err)
		}
	})
	t.Run("snapshot: a row changed since the snapshot is a conflict (1023)", func(t *testing.T) {
		t.Parallel()
		db := e.db(t)
		c1, c2 := e.connect(t, db), e.connect(t, db)
		mustExec(t, c1, "CREATE TABLE t (id INT, v INT)")
		mustExec(t, c1, "INSERT INTO t VALUES (1, 1), (2, 2)")
		mustExec(t, c1, "BEGIN")
		wantRows(t, c1, "2", "SELECT count(*) FROM t") // the snapshot
		mustExec(t, c2, "UPDATE t SET v = 10 WHERE id = 1")
		_, err := c1.Exec(ctxT(t), "UPDATE t SET v = 20 WHERE id = 1")
		want1023(t, err, "UPDATE of a row changed since the snapshot")
		mustExec(t, c1, "ROLLBACK")
		// another row of the same table is no conflict
		mustExec(t, c1, "BEGIN")
		wantRows(t, c1, "2", "SELECT count(*) FROM t")
		mustExec(t, c2, "UPDATE t SET v = 11 WHERE id = 1")
		mustExec(t, c1, "UPDATE t SET v = 22 WHERE id = 2")
		mustExec(t, c1, "COMMIT")
		wantRows(t, c2, "1|11\n2|22", "SELECT id, v FROM t ORDER BY id")
	})
	t.Run("writers of one table queue until commit", func(t *testing.T) {
		t.Parallel()
		db := e.db(t)
		c1, c2, c3 := e.connect(t, db), e.connect(t, db), e.connect(t, db)
		mustExec(t, c1, "CREATE TABLE t (id INT)")
		mustExec(t, c1, "CREATE TABLE other (id INT)")
		mustExec(t, c1, "BEGIN")
		mustExec(t, c1, "INSERT INTO t VALUES (1)")
		// a reader does not wait; a writer of another table does not either
		wantRows(t, c3, "0", "SELECT count(*) FROM t")
		mustExec(t, c3, "INSERT INTO other VALUES (1)")
		done := e.blocked(t, db, c2, "INSERT INTO t SELECT count(*) + 1 FROM t")
		mustExec(t, c1, "COMMIT")
		if err := finished(t, done, "second writer"); err != nil {
			t.Fatal(err)
		}
		// the waiting writer's snapshot begins after the lock: it saw the first row
		wantRows(t, c3, "1\n2", "SELECT id FROM t ORDER BY id")
		// the same over the extended protocol (statements with parameters), in
		// a transaction and outside one, and for DELETE and UPDATE
		for _, sql := range []string{"DELETE FROM t WHERE id = $1", "UPDATE t SET id = 3 WHERE id = $1"} {
			tx, err := c1.Begin(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			arg := map[bool]int{true: 2, false: 1}[strings.HasPrefix(sql, "DELETE")]
			if _, err := tx.Exec(ctxT(t), sql, arg); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			done = e.blocked(t, db, c2, "INSERT INTO t VALUES ($1)", 9)
			if err := tx.Commit(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if err := finished(t, done, "writer after "+sql); err != nil {
				t.Fatal(err)
			}
		}
		wantRows(t, c3, "3\n9\n9", "SELECT id FROM t ORDER BY id")
	})
	t.Run("LOCK takes an exclusive table lock", func(t *testing.T) {
		t.Parallel()
		db := e.db(t)
		c1, c2 := e.connect(t, db), e.connect(t, db)
		mustExec(t, c1, "CREATE TABLE t (id INT)")
		mustExec(t, c1, "CREATE TABLE u (id INT)")
		wantErr(t, c1, "42601", `syntax error at or near "IN"`, "LOCK TABLE t IN SHARE MODE")
		wantErr(t, c1, "42601", `syntax error at or near "NOWAIT"`, "LOCK t NOWAIT")
		wantErr(t, c1, "42P01", `relation "missing" does not exist`, "LOCK missing")
		mustExec(t, c1, "LOCK t") // outside a transaction block: accepted, released at once
		mustExec(t, c1, "BEGIN")
		mustExec(t, c1, "LOCK t, u")
		done := e.blocked(t, db, c2, "SELECT count(*) FROM u") // reads wait too
		mustExec(t, c1, "INSERT INTO u VALUES (1)")
		mustExec(t, c1, "COMMIT")
		if err := finished(t, done, "reader of a locked table"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ALTER DATABASE ISOLATION LEVEL SERIALIZABLE applies to new sessions", func(t *testing.T) {
		t.Parallel()
		db := e.db(t)
		c := e.connect(t, db)
		wantErr(t, c, "42601", `syntax error at or near "READ"`, "ALTER DATABASE "+db+" ISOLATION LEVEL READ COMMITTED")
		mustExec(t, c, "ALTER DATABASE "+db+" ISOLATION LEVEL SERIALIZABLE")
		want1023(t, readWriteCycle(t, e, db, "s_"), "second COMMIT")
		mustExec(t, c, "ALTER DATABASE "+db+" ISOLATION LEVEL SNAPSHOT")
		if err := readWriteCycle(t, e, db, "n_"); err != nil {
			t.Fatalf("second COMMIT after ISOLATION LEVEL SNAPSHOT: %v", err)
		}
	})
}

// TestIsolationSerializable: an emulator started with Isolation
// "serializable" refuses what no serial order explains, with Redshift's
// error 1023.
func TestIsolationSerializable(t *testing.T) {
	e := startEnv(t, func(c *emu.Config) { c.Isolation = "serializable" })
	want1023(t, readWriteCycle(t, e, e.db(t), ""), "second COMMIT")
}
