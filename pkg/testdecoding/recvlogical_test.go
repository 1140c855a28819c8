package testdecoding

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

const recvlogicalFile = "testdata/recvlogical.txt"

// recvlogicalWorkload is committed, one statement per transaction, after the
// slot exists; recvlogicalCounts is what it decodes to.
var recvlogicalWorkload = []string{
	`INSERT INTO orders VALUES (1, 'first', 10.50), (2, E'two\nlines with ''quotes''', 2), (3, NULL, 3)`,
	`UPDATE orders SET amount = amount * 2 WHERE id = 1`,
	`UPDATE orders SET id = 20 WHERE id = 2`,
	`DELETE FROM orders WHERE id = 3`,
	`SELECT pg_logical_emit_message(true, 'audit', E'multi\nline\n\ncontent')`,
	`INSERT INTO docs SELECT 1, 0, string_agg(md5(i::text), '') FROM generate_series(1, 400) i`,
	`UPDATE docs SET rev = rev + 1`,
	`DO $$ BEGIN INSERT INTO nokey VALUES (1, E'a\tb'); UPDATE nokey SET v = E'c\\d'; DELETE FROM nokey; END $$`,
	`INSERT INTO orders SELECT i, 'bulk ' || i, i FROM generate_series(100, 299) i`,
	`SELECT pg_logical_emit_message(false, 'heartbeat', '')`,
	`TRUNCATE orders, nokey`,
	`INSERT INTO "Odd ""Name""" VALUES (E'\n', E'{"x\ny"}')`,
}

var recvlogicalCounts = map[Kind]int{
	KindBegin:    10,
	KindCommit:   10,
	KindInsert:   3 + 1 + 1 + 200 + 1,
	KindUpdate:   1 + 1 + 1 + 1,
	KindDelete:   1 + 1,
	KindTruncate: 1,
	KindMessage:  2,
}

// TestRecvlogicalCapture reads a real pg_recvlogical capture (include-xids
// and include-timestamp on) with Reader: every record parses, renders back
// to its exact text, and the record counts per kind are the workload's.
// With -update it first captures testdata/recvlogical.txt again.
func TestRecvlogicalCapture(t *testing.T) {
	if *update {
		captureRecvlogical(t, recvlogicalFile)
	}
	f, err := os.Open(recvlogicalFile)
	if err != nil {
		t.Fatalf("open capture (go test -run TestRecvlogicalCapture -update writes it): %v", err)
	}
	defer f.Close()
	r := NewReader(f)
	counts := map[Kind]int{}
	var openXID uint32
	for {
		rec, raw, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("line %d: %v", r.Line(), err)
		}
		counts[rec.Kind]++
		if back := Render(rec); !bytes.Equal(back, raw) {
			t.Errorf("line %d: Render differs\ncapture: %q\nrender:  %q", r.Line(), raw, back)
		}
		switch rec.Kind {
		case KindBegin:
			if rec.XID == 0 || openXID != 0 {
				t.Errorf("line %d: BEGIN %d inside transaction %d", r.Line(), rec.XID, openXID)
			}
			openXID = rec.XID
		case KindCommit:
			if rec.XID != openXID || rec.CommitTime.IsZero() {
				t.Errorf("line %d: COMMIT xid %d time %v, open transaction %d", r.Line(), rec.XID, rec.CommitTime, openXID)
			}
			openXID = 0
		}
	}
	if !reflect.DeepEqual(counts, recvlogicalCounts) {
		t.Errorf("records per kind = %v, want %v", counts, recvlogicalCounts)
	}
}

// captureRecvlogical runs the workload against a fresh Postgres and captures
// its decoding with the real pg_recvlogical into path.
func captureRecvlogical(t *testing.T, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg := testenv.StartPostgres(t)
	conn := connect(t, ctx, pg.URL("postgres"))
	for _, s := range []string{
		"CREATE TABLE orders (id integer PRIMARY KEY, note text, amount numeric(10,2))",
		"CREATE TABLE docs (id integer PRIMARY KEY, rev integer, body text)",
		"ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL",
		"CREATE TABLE nokey (id integer, v text)",
		`CREATE TABLE "Odd ""Name""" (v text, a text[])`,
		"SELECT pg_create_logical_replication_slot('capture', 'test_decoding')",
	} {
		mustExec(t, ctx, conn, s)
	}
	for _, s := range recvlogicalWorkload {
		mustExec(t, ctx, conn, s)
	}
	var endpos string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&endpos); err != nil {
		t.Fatal(err)
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(pg.BinDir(), "pg_recvlogical"),
		"-d", pg.URL("postgres"), "--slot", "capture", "--start", "--no-loop", "--endpos", endpos,
		"-o", "include-xids=1", "-o", "include-timestamp=1", "-o", "skip-empty-xacts=1", "-f", "-")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("pg_recvlogical: %v\n%s", err, stderr.Bytes())
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
