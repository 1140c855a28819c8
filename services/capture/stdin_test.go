package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
)

var (
	update = flag.Bool("update", false, "rewrite testdata/recvlogical.jsonl from the binary's output")
	record = flag.Bool("record", false, "re-record testdata/recvlogical.txt with pg_recvlogical against a fresh Postgres")
)

// recordSQL is the traffic behind testdata/recvlogical.txt, one
// transaction per element.
var recordSQL = []string{
	`CREATE TABLE orders (id int PRIMARY KEY, note text, amount numeric(10,2), at timestamptz);
	 CREATE TABLE lines (order_id int, line int, qty int, PRIMARY KEY (order_id, line));
	 CREATE TABLE docs (id int PRIMARY KEY, body text, tag text);
	 ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL`,
	`INSERT INTO orders VALUES (1, 'plain', 10.50, '2024-01-02 03:04:05+00'), (2, E'it''s\nmulti-line', NULL, NULL)`,
	`INSERT INTO lines VALUES (1, 1, 3), (1, 2, 4); UPDATE orders SET note = 'changed' WHERE id = 1`,
	`UPDATE orders SET id = 20 WHERE id = 2`,
	`INSERT INTO docs VALUES (1, repeat('x', 2100), 'a')`,
	`UPDATE docs SET tag = 'b' WHERE id = 1`,
	`DELETE FROM lines WHERE line = 2`,
	`SELECT pg_logical_emit_message(true, 'redms', 'hello')`,
	`COPY lines FROM PROGRAM 'printf "2\t1\t1\n2\t2\t2\n"'`,
	`TRUNCATE lines, docs`,
}

// TestRecordRecvlogical re-records the committed capture when run with
// -record (it needs pg_recvlogical); otherwise it checks the file is there.
func TestRecordRecvlogical(t *testing.T) {
	path := filepath.Join("testdata", "recvlogical.txt")
	if !*record {
		if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
			t.Fatalf("%s missing: run go test -run TestRecordRecvlogical -record", path)
		}
		return
	}
	pg := testenv.StartPostgres(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, "SELECT pg_create_logical_replication_slot('rec', 'test_decoding')")
	for _, stmt := range recordSQL {
		exec1(t, db, stmt)
	}
	end := currentLSN(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(pg.BinDir(), "pg_recvlogical"), "-d", url, "-S", "rec", "--start", "-f", "-",
		"-o", "include-xids=1", "-o", "include-timestamp=1", "--endpos", end.String(), "--no-loop")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_recvlogical: %v\n%s", err, stderr.String())
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

type dryChange struct {
	Database string `json:"database"`
	Schema   string `json:"schema"`
	Table    string `json:"table"`
	Op       string `json:"op"`
	Columns  []struct {
		Name           string `json:"name"`
		Type           string `json:"type"`
		Value          string `json:"value"`
		Null           bool   `json:"null"`
		UnchangedToast bool   `json:"unchanged_toast"`
	} `json:"columns"`
	OldKey     []json.RawMessage `json:"old_key"`
	Lsn        string            `json:"lsn"`
	Xid        string            `json:"xid"`
	CommitTime string            `json:"commit_time"`
	KeyColumns []string          `json:"key_columns"`
}

func runStdin(t *testing.T, input []byte, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(captureBin, args...)
	cmd.Env = append(os.Environ(), "REDMS_METRICS_ADDR=")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = bytes.NewReader(input)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run redms-capture: %v", err)
	}
	return o.String(), e.String(), code
}

func parseLines(t *testing.T, out string) []dryChange {
	t.Helper()
	var cs []dryChange
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c dryChange
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		cs = append(cs, c)
	}
	return cs
}

// TestStdinDryRun feeds the committed pg_recvlogical capture to
// redms-capture --stdin --dry-run and checks the JSON lines.
func TestStdinDryRun(t *testing.T) {
	input, err := os.ReadFile(filepath.Join("testdata", "recvlogical.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runStdin(t, input, map[string]string{"REDMS_TABLE_KEYS": "public.lines=order_id,line"}, "--stdin", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	golden := filepath.Join("testdata", "recvlogical.jsonl")
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if out != string(want) {
		t.Errorf("output differs from %s (run with -update after checking):\n%s", golden, out)
	}

	cs := parseLines(t, out)
	// Every change record of the input is one line; TRUNCATE of two tables two.
	var changes int
	for _, l := range strings.Split(string(input), "\n") {
		if strings.HasPrefix(l, "table ") {
			changes++
			if strings.Contains(l, ": TRUNCATE:") {
				changes += strings.Count(l[:strings.Index(l, ": TRUNCATE:")], ",")
			}
		}
	}
	if len(cs) != changes || changes < 12 {
		t.Fatalf("%d JSON lines for %d changes", len(cs), changes)
	}
	var last pglogrepl.LSN
	ops := map[string]int{}
	for i, c := range cs {
		lsn, err := pglogrepl.ParseLSN(c.Lsn)
		if err != nil || lsn < last || lsn == 0 {
			t.Errorf("line %d: lsn %q after %s", i, c.Lsn, last)
		}
		last = lsn
		ops[c.Op]++
		if c.Database != "stdin" || c.Schema != "public" || c.Xid == "" || c.CommitTime == "" {
			t.Errorf("line %d: %s.%s.%s xid %q commit time %q", i, c.Database, c.Schema, c.Table, c.Xid, c.CommitTime)
		}
		wantKeys := []string{"id"}
		if c.Table == "lines" {
			wantKeys = []string{"order_id", "line"}
		}
		if strings.Join(c.KeyColumns, ",") != strings.Join(wantKeys, ",") {
			t.Errorf("line %d (%s): keys %v, want %v", i, c.Table, c.KeyColumns, wantKeys)
		}
	}
	for _, op := range []string{"OP_INSERT", "OP_UPDATE", "OP_DELETE", "OP_TRUNCATE"} {
		if ops[op] == 0 {
			t.Errorf("no %s in output: %v", op, ops)
		}
	}
	// The first change is the first INSERT: input record 4 (after the DDL
	// transaction and a BEGIN).
	if cs[0].Lsn != "0/4" || cs[0].Op != "OP_INSERT" || cs[0].Table != "orders" {
		t.Errorf("first change %+v, want insert into orders at 0/4", cs[0])
	}
	var toast bool
	for _, c := range cs {
		for _, col := range c.Columns {
			toast = toast || col.UnchangedToast
		}
	}
	if !toast {
		t.Error("no unchanged_toast column in output")
	}
}

// TestStdinBadRecord: a record that does not parse goes to stderr with its
// line number, the rest is still written, and the exit status is non-zero.
func TestStdinBadRecord(t *testing.T) {
	input := "BEGIN 10\n" +
		"table public.t: INSERT: id[integer]:1\n" +
		"table public.t: INSERT: id[integer]:'unterminated\n" +
		"table public.t: INSERT: id[integer]:3\n" +
		"COMMIT 10\n"
	// With the metrics server on, the run still ends at the end of input.
	out, stderr, code := runStdin(t, []byte(input), map[string]string{"REDMS_METRICS_ADDR": testenv.FreeAddr(t)}, "--stdin", "--dry-run")
	if code == 0 {
		t.Errorf("exit status 0 with a bad record")
	}
	if !strings.Contains(stderr, "line 3: ") {
		t.Errorf("stderr does not name line 3:\n%s", stderr)
	}
	cs := parseLines(t, out)
	if len(cs) != 2 || cs[0].Lsn != "0/2" || cs[1].Lsn != "0/4" {
		t.Errorf("output %+v, want the two good inserts at 0/2 and 0/4", cs)
	}
}

// TestStdinPublish publishes the committed capture into JetStream.
func TestStdinPublish(t *testing.T) {
	input, err := os.ReadFile(filepath.Join("testdata", "recvlogical.txt"))
	if err != nil {
		t.Fatal(err)
	}
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	// No linger cut: batches close on their limits and at the end of
	// input only, so a second run cuts them the same.
	env := map[string]string{"REDMS_NATS_URL": ns.URL(), "REDMS_DATABASE": "shop", "REDMS_STDIN_EPOCH": "1", "REDMS_BATCH_LINGER": "1h"}
	out, stderr, code := runStdin(t, input, env, "--stdin")
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, out, stderr)
	}
	dry, _, _ := runStdin(t, input, nil, "--stdin", "--dry-run")
	want := parseLines(t, dry)
	raw := readStream(t, js, "REDMS_WAL")
	checkIDs(t, raw)
	msgs := changes(t, raw)
	if len(msgs) != len(want) || len(raw) >= len(want) {
		t.Fatalf("stream holds %d changes in %d messages, want %d changes in batches", len(msgs), len(raw), len(want))
	}
	// Records in the input's order: their LSNs are their numbers.
	sort.SliceStable(msgs, func(i, j int) bool { return lsnOf(t, msgs[i]) < lsnOf(t, msgs[j]) })
	for i, m := range msgs {
		if got := m.Header.Get(walheader.LSN); got != want[i].Lsn {
			t.Errorf("change %d: lsn %s, want %s", i, got, want[i].Lsn)
		}
		if tbl := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]; tbl != want[i].Table || !strings.HasPrefix(m.Header.Get(walheader.FirstPos), "0/1:") {
			t.Errorf("change %d: %s at %s, want %s on the epoch 0/1", i, m.Subject, m.Header.Get(walheader.FirstPos), want[i].Table)
		}
		if m.Header.Get(walheader.CommitLSN) == "" || m.Header.Get(walheader.CommitTime) == "" {
			t.Errorf("change %d: commit headers missing: %v", i, m.Header)
		}
	}
	// Publishing the same input with the same epoch again is deduplicated
	// by Nats-Msg-Id.
	if _, stderr, code := runStdin(t, input, env, "--stdin"); code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, stderr)
	}
	if n := streamCount(t, js, "REDMS_WAL"); n != uint64(len(raw)) {
		t.Errorf("after a second run the stream holds %d messages, want %d", n, len(raw))
	}
}

// TestStdinRunsGetTheirOwnIDs: two different inputs, or two runs of one
// pipe, must not share Nats-Msg-Ids — within the dedup window the second
// would be dropped silently. Every run has an epoch (REDMS_STDIN_EPOCH,
// default its start time) as the base of its positions.
func TestStdinRunsGetTheirOwnIDs(t *testing.T) {
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	input := func(v string) []byte {
		return []byte("BEGIN 10\ntable public.t: INSERT: id[integer]:1 v[text]:'" + v + "'\n" +
			"table public.t: UPDATE: id[integer]:1 v[text]:'" + v + "2'\nCOMMIT 10\n")
	}
	env := map[string]string{"REDMS_NATS_URL": ns.URL(), "REDMS_DATABASE": "shop", "REDMS_BATCH_LINGER": "1h"}
	for _, v := range []string{"first", "second"} {
		if _, stderr, code := runStdin(t, input(v), env, "--stdin"); code != 0 {
			t.Fatalf("run %s: exit %d\n%s", v, code, stderr)
		}
	}
	msgs := readChanges(t, js, "REDMS_WAL")
	var bodies []string
	for _, m := range msgs {
		bodies = append(bodies, m.Data)
	}
	if len(msgs) != 4 {
		t.Fatalf("the stream holds %d changes, want both runs' 4: %q", len(msgs), bodies)
	}
	p1, p2 := posOf(t, 1, msgs[1]), posOf(t, 2, msgs[2])
	if !p1.Less(p2) || p2.Index != 1 {
		t.Errorf("second run starts at %s after %s, want a higher base and index 1", p2, p1)
	}

	// An epoch set explicitly is the base; index is the change's number.
	env["REDMS_STDIN_EPOCH"] = "4096"
	if _, stderr, code := runStdin(t, input("third"), env, "--stdin"); code != 0 {
		t.Fatalf("run third: exit %d\n%s", code, stderr)
	}
	// The same input with the same epoch again is a duplicate.
	if _, stderr, code := runStdin(t, input("third"), env, "--stdin"); code != 0 {
		t.Fatalf("run third again: exit %d\n%s", code, stderr)
	}
	raw := readStream(t, js, "REDMS_WAL")
	checkIDs(t, raw)
	msgs = changes(t, raw)
	if len(msgs) != 6 {
		t.Fatalf("the stream holds %d changes, want 6", len(msgs))
	}
	for i, want := range []string{"0/1000:1", "0/1000:2"} {
		m := msgs[4+i]
		if got := m.Header.Get(walheader.FirstPos); got != want {
			t.Errorf("change %d: position %s, want %s", 4+i, got, want)
		}
	}
	if got := raw[len(raw)-1].Header.Get(walheader.MsgID); got != "redms.wal.shop.public.t:0/1000:1-0/1000:2" {
		t.Errorf("id of the third run's batch %q, want its subject and positions", got)
	}
	if got := msgs[5].Header.Get(walheader.PrevPos); got != "0/1000:1" {
		t.Errorf("second change's prev %q, want 0/1000:1", got)
	}
}

// TestStdinChangeBeforeBegin: input cut mid-transaction starts with changes
// and no BEGIN; they are published (with a warning), not dropped when the
// next BEGIN arrives.
func TestStdinChangeBeforeBegin(t *testing.T) {
	input := "table public.t: INSERT: id[integer]:1\n" +
		"table public.t: INSERT: id[integer]:2\n" +
		"BEGIN 11\n" +
		"table public.t: INSERT: id[integer]:3\n" +
		"COMMIT 11\n"
	out, stderr, code := runStdin(t, []byte(input), nil, "--stdin", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	cs := parseLines(t, out)
	var got []string
	for _, c := range cs {
		got = append(got, c.Columns[0].Value)
	}
	if strings.Join(got, ",") != "1,2,3" {
		t.Errorf("changes %v, want 1,2,3 (nothing before the BEGIN dropped)", got)
	}
	if !strings.Contains(stderr, `"level":"WARN"`) || !strings.Contains(stderr, "BEGIN") {
		t.Errorf("no warning about changes before any BEGIN:\n%s", stderr)
	}
}
