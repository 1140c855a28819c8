package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
)

// refChange is one change as the source decoded it, read through a copy of
// capture's slot with pg_logical_slot_peek_changes, numbered as
// docs/DESIGN.md §2.3 says.
type refChange struct {
	subject    string
	pos        walheader.Pos
	lsn        pglogrepl.LSN
	xid        string
	text       string
	commitLSN  pglogrepl.LSN
	commitTime time.Time
	txn        int // the transaction's number in commit order
}

// refChanges reads what slot holds up to now, in database db, numbering
// positions from start (the confirmed position of capture's slot, created
// just before it with nothing written in between). It also returns how many
// transactions the slot decoded, the test's flush among them.
func refChanges(t *testing.T, c *pgx.Conn, slot, db string, start pglogrepl.LSN) ([]refChange, int) {
	t.Helper()
	// Decoding reads only flushed WAL, and the test clusters commit
	// asynchronously: a synchronous commit that writes WAL (a logical
	// decoding message, which capture does not publish) flushes all before.
	exec1(t, c, `BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_logical_emit_message(true, 'redms-test', 'flush'); COMMIT`)
	rows, err := c.Query(context.Background(), `SELECT lsn::text, xid::text, data FROM pg_logical_slot_peek_changes($1, NULL, NULL,
		'include-xids', '1', 'include-timestamp', '1', 'skip-empty-xacts', '1')`, slot)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var (
		out   []refChange
		open  []int // indexes into out of the open transaction's changes
		base  = uint64(start)
		index map[string]uint64
		txn   int
	)
	for rows.Next() {
		var lsnText, xid, data string
		if err := rows.Scan(&lsnText, &xid, &data); err != nil {
			t.Fatal(err)
		}
		lsn, err := pglogrepl.ParseLSN(lsnText)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := testdecoding.Parse([]byte(data))
		if err != nil {
			t.Fatalf("reference %q: %v", data, err)
		}
		switch rec.Kind {
		case testdecoding.KindBegin:
			open, index = nil, map[string]uint64{}
		case testdecoding.KindCommit:
			// A transaction's base is the end of its own COMMIT.
			for _, i := range open {
				out[i].commitLSN, out[i].commitTime = lsn, rec.CommitTime
				out[i].pos.Base = uint64(lsn)
			}
			base = uint64(lsn) + 1
			txn++
		case testdecoding.KindTruncate:
			for _, tbl := range rec.Tables {
				subj := subject.Subject(subject.Table{DB: db, Schema: tbl.Schema, Name: tbl.Name})
				open = append(open, len(out))
				out = append(out, refChange{subject: subj, pos: walheader.Pos{Base: base, Index: index[subj]}, lsn: lsn, xid: xid, text: data, txn: txn})
				index[subj]++
			}
		case testdecoding.KindInsert, testdecoding.KindUpdate, testdecoding.KindDelete:
			subj := subject.Subject(subject.Table{DB: db, Schema: rec.Table.Schema, Name: rec.Table.Name})
			open = append(open, len(out))
			out = append(out, refChange{subject: subj, pos: walheader.Pos{Base: base, Index: index[subj]}, lsn: lsn, xid: xid, text: data, txn: txn})
			index[subj]++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out, txn
}

type subjPos struct {
	subject string
	pos     walheader.Pos
}

// compareWithSource checks that the stream's changes are exactly the
// source's: every change once, at its position, with its text, LSN,
// transaction id and commit.
func compareWithSource(t *testing.T, recs []streamMsg, ref []refChange) {
	t.Helper()
	got := map[subjPos]streamMsg{}
	for _, r := range recs {
		k := subjPos{r.Subject, posOf(t, 0, r)}
		if _, dup := got[k]; dup {
			t.Errorf("%s %s twice in the stream", k.subject, k.pos)
		}
		got[k] = r
	}
	if len(recs) != len(ref) {
		t.Errorf("%d changes in the stream, the source decoded %d", len(recs), len(ref))
	}
	bad := 0
	for _, e := range ref {
		r, ok := got[subjPos{e.subject, e.pos}]
		var problems []string
		switch {
		case !ok:
			problems = append(problems, "missing")
		default:
			if r.Data != e.text {
				problems = append(problems, fmt.Sprintf("text %.60q", r.Data))
			}
			if l := r.Header.Get(walheader.LSN); l != e.lsn.String() {
				problems = append(problems, "lsn "+l)
			}
			if x := r.Header.Get(walheader.Xid); x != e.xid {
				problems = append(problems, "xid "+x)
			}
			if c := r.Header.Get(walheader.CommitLSN); c != e.commitLSN.String() {
				problems = append(problems, "commit "+c)
			}
			if at := r.Header.Get(walheader.CommitTime); at != e.commitTime.UTC().Format(walheader.TimeLayout) {
				problems = append(problems, "commit time "+at)
			}
		}
		if len(problems) > 0 {
			if bad++; bad <= 10 {
				t.Errorf("%s %s (%.60q, lsn %s, xid %s, commit %s): %s", e.subject, e.pos, e.text, e.lsn, e.xid, e.commitLSN, strings.Join(problems, ", "))
			}
		}
	}
	if bad > 10 {
		t.Errorf("… %d changes differ from the source", bad)
	}
}

// TestBatches runs capture with small batch limits and no linger over a
// workload that exercises every way a batch closes, then checks every
// message: parsed back (walheader.Parse, SplitBody, testdecoding.Parse),
// its changes are exactly what the source decoded, each at its position;
// each batch closed on records, on bytes, on a change of its table's
// headers, or at shutdown; a batch spans transactions and a transaction
// spans batches; prev chains the batches; ids are unique.
func TestBatches(t *testing.T) {
	const records, bytes = 7, 4096
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, `
CREATE TABLE a (id int PRIMARY KEY, v text);
CREATE TABLE b (id int PRIMARY KEY, v text);
CREATE TABLE c (id int, v text);
CREATE TABLE d (id int PRIMARY KEY, body text);
`)
	exec1(t, db, `SELECT pg_create_logical_replication_slot('batches', 'test_decoding')`)
	exec1(t, db, `SELECT pg_create_logical_replication_slot('ref', 'test_decoding')`)
	start := slotConfirmed(t, db, "batches")
	env := liveEnv(url, ns.URL(), "batches")
	env["REDMS_BATCH_RECORDS"] = fmt.Sprint(records)
	env["REDMS_BATCH_BYTES"] = fmt.Sprint(bytes)
	env["REDMS_BATCH_LINGER"] = "1h" // batches close on their limits, headers and shutdown only
	env["REDMS_METRICS_ADDR"] = testenv.FreeAddr(t)
	p := startCapture(t, env)
	testenv.Eventually(t, 30*time.Second, "replication", func() bool { return strings.Contains(p.Log.String(), "replication started") })

	exec1(t, db, `BEGIN;
INSERT INTO a SELECT g, 'row ' || g FROM generate_series(1, 40) g;
INSERT INTO b SELECT g, 'row ' || g FROM generate_series(1, 10) g;
INSERT INTO a SELECT g, 'row ' || g FROM generate_series(41, 45) g;
COMMIT`)
	for i := range 10 { // one batch of several transactions
		exec1(t, db, `INSERT INTO a VALUES ($1, 'tiny')`, 1000+i)
	}
	exec1(t, db, `INSERT INTO d SELECT g, repeat(md5(g::text), 45) FROM generate_series(1, 10) g`) // ~1.5 kB rows
	exec1(t, db, `INSERT INTO c SELECT g, 'keyless' FROM generate_series(1, 5) g`)
	// capture reads the catalog when it decodes: the headers change in
	// the middle of open batches only if it decoded the above before the
	// DDL. A batch of sync that closes on records says it did.
	exec1(t, db, `CREATE TABLE sync (id int PRIMARY KEY)`)
	exec1(t, db, `INSERT INTO sync SELECT generate_series(1, $1::int)`, records)
	testenv.Eventually(t, 30*time.Second, "sync's batch", func() bool {
		for _, m := range readStream(t, js, "REDMS_WAL") {
			if strings.HasSuffix(m.Subject, ".sync") {
				return true
			}
		}
		return false
	})
	ddl := currentLSN(t, db)
	exec1(t, db, `ALTER TABLE b ADD COLUMN x int DEFAULT 5`) // Redms-Missing changes
	exec1(t, db, `ALTER TABLE d ADD COLUMN y numeric(8,3)`)  // Redms-Types changes
	exec1(t, db, `ALTER TABLE c ADD PRIMARY KEY (id)`)       // Redms-Keys changes
	time.Sleep(1200 * time.Millisecond)                      // capture looks a keyless table up again after a second
	exec1(t, db, `INSERT INTO b SELECT g, 'with x', g FROM generate_series(100, 104) g`)
	exec1(t, db, `INSERT INTO d SELECT g, 'typed', 1.5 FROM generate_series(100, 101) g`)
	exec1(t, db, `INSERT INTO c SELECT g, 'keyed' FROM generate_series(100, 104) g`)
	exec1(t, db, `UPDATE a SET v = 'updated' WHERE id <= 3; DELETE FROM b WHERE id <= 2; TRUNCATE b`)
	ref, txns := refChanges(t, db, "ref", "shop", start)
	// SIGTERM confirms what was read and no further: stop only once
	// capture has read every transaction the reference decoded.
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("capture read %d transactions", txns), func() bool {
		m, err := testenv.Scrape(env["REDMS_METRICS_ADDR"])
		return err == nil && m.Sum("redms_capture_transactions_total") >= float64(txns)
	})
	if err := p.Stop(20 * time.Second); err != nil { // SIGTERM publishes the open batches
		t.Fatalf("capture exit: %v", err)
	}

	raw := readStream(t, js, "REDMS_WAL")
	recs := changes(t, raw)
	compareWithSource(t, recs, ref)
	checkIDs(t, raw)
	checkPrevChain(t, raw, 0)
	t.Logf("%d changes in %d messages", len(recs), len(raw))

	// Each batch closed for a reason: its limit, the next change's size,
	// its table's headers, or the shutdown (the subject's last message).
	type msgInfo struct {
		m     streamMsg
		meta  walheader.Meta
		recs  [][]byte
		hdrs  string
		first int // index into recs of its first change
	}
	var bySubj = map[string][]msgInfo{}
	k := 0
	spans, multiRun := map[int]map[string]bool{}, 0 // transaction → its messages
	for _, m := range raw {
		meta, err := walheader.Parse(m.Header)
		if err != nil {
			t.Fatal(err)
		}
		body := [][]byte{[]byte(m.Data)}
		if meta.Lens != nil {
			body, _ = walheader.SplitBody([]byte(m.Data), meta.Lens)
		}
		if len(body) > records || (len(body) > 1 && len(m.Data) > bytes) {
			t.Errorf("%s %s: %d changes, %d bytes: over the limits %d, %d", m.Subject, m.Header.Get(walheader.MsgID), len(body), len(m.Data), records, bytes)
		}
		if len(meta.Runs) > 1 {
			multiRun++
		}
		hdrs := m.Header.Get(walheader.Keys) + m.Header.Get(walheader.KeySource) + m.Header.Get(walheader.Types) + m.Header.Get(walheader.Missing)
		bySubj[m.Subject] = append(bySubj[m.Subject], msgInfo{m: m, meta: meta, recs: body, hdrs: hdrs, first: k})
		for i := range body {
			for _, e := range ref {
				if e.subject == m.Subject && e.pos == posOf(t, k+i, recs[k+i]) {
					if spans[e.txn] == nil {
						spans[e.txn] = map[string]bool{}
					}
					spans[e.txn][m.Header.Get(walheader.MsgID)] = true
					break
				}
			}
		}
		k += len(body)
	}
	for subj, ms := range bySubj {
		for i := 0; i+1 < len(ms); i++ {
			cur, next := ms[i], ms[i+1]
			switch {
			case len(cur.recs) == records:
			case len(cur.m.Data)+1+len(next.recs[0]) > bytes:
			case cur.hdrs != next.hdrs:
			default:
				t.Errorf("%s: batch %s (%d changes, %d bytes) closed without a reason before %s", subj,
					cur.m.Header.Get(walheader.MsgID), len(cur.recs), len(cur.m.Data), next.m.Header.Get(walheader.MsgID))
			}
		}
	}
	// The headers say what the table was when capture decoded it: b's
	// changes after the DDL carry its missing value, c's its key, d's its
	// types; no batch mixes before and after.
	for subj, ms := range bySubj {
		for _, mi := range ms {
			var before, after int
			for i := range mi.recs {
				if lsnOf(t, recs[mi.first+i]) > ddl {
					after++
				} else {
					before++
				}
			}
			id := mi.m.Header.Get(walheader.MsgID)
			switch tbl := subj[strings.LastIndexByte(subj, '.')+1:]; {
			case tbl != "b" && tbl != "c" && tbl != "d":
			case before > 0 && after > 0:
				t.Errorf("batch %s mixes changes before and after its table's headers changed", id)
			case tbl == "b" && (after > 0) != (mi.m.Header.Get(walheader.Missing) == `{"x":"5"}`):
				t.Errorf("batch %s of b (%d changes after the DDL): %s %q", id, after, walheader.Missing, mi.m.Header.Get(walheader.Missing))
			case tbl == "c" && (after > 0) != (mi.m.Header.Get(walheader.Keys) == `["id"]`):
				t.Errorf("batch %s of c (%d changes after the DDL): %s %s", id, after, walheader.Keys, mi.m.Header.Get(walheader.Keys))
			case tbl == "d" && (after > 0) != strings.Contains(mi.m.Header.Get(walheader.Types), "numeric(8,3)"):
				t.Errorf("batch %s of d (%d changes after the DDL): %s %s", id, after, walheader.Types, mi.m.Header.Get(walheader.Types))
			}
		}
	}
	if multiRun == 0 {
		t.Error("no batch spans transactions")
	}
	if n := len(spans[0]); n < 45/records+1 {
		t.Errorf("the first transaction (45 changes of a, 10 of b) is in %d messages: want it to span batches", n)
	}
}

// TestBatchLinger: a table's batch that reaches no limit is published once
// it lingered REDMS_BATCH_LINGER, with nothing else arriving (no limit is
// reached and capture keeps running), and the slot is confirmed past it.
func TestBatchLinger(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)`)
	env := liveEnv(url, ns.URL(), "linger")
	env["REDMS_BATCH_LINGER"] = "300ms"
	startCapture(t, env)
	testenv.Eventually(t, 30*time.Second, "slot", func() bool { return slotConfirmed(t, db, "linger") != 0 })
	exec1(t, db, `INSERT INTO a VALUES (1); INSERT INTO b VALUES (1)`)
	exec1(t, db, `INSERT INTO a VALUES (2)`)
	end := currentLSN(t, db)
	waitStreamHolds(t, js, 3, 30*time.Second)
	testenv.Eventually(t, 30*time.Second, "slot confirmed past the lingering batches", func() bool { return slotConfirmed(t, db, "linger") >= end })
	if n := len(readChanges(t, js, "REDMS_WAL")); n != 3 {
		t.Errorf("%d changes in the stream, want 3", n)
	}
}

var rowID = regexp.MustCompile(`^table public\.(\w+): INSERT: id\[integer\]:(\d+) `)

// txnRows tells, per transaction of TestFullStreamMidBatch (k inserts ids
// k*perTable … into a and b), which rows a set of changes holds.
type txnRows struct {
	perTable int
	rows     map[int]map[string]int // txn → table → rows seen
	commit   map[int]pglogrepl.LSN  // txn → its commit, where a change says
}

func newTxnRows(perTable int) *txnRows {
	return &txnRows{perTable: perTable, rows: map[int]map[string]int{}, commit: map[int]pglogrepl.LSN{}}
}

func (r *txnRows) add(t *testing.T, recs []streamMsg, seen map[string]bool) {
	for _, m := range recs {
		sub := rowID.FindStringSubmatch(m.Data)
		if sub == nil {
			t.Errorf("unexpected change %.60q", m.Data)
			continue
		}
		key := sub[1] + ":" + sub[2]
		if seen[key] {
			continue
		}
		seen[key] = true
		id, _ := strconv.Atoi(sub[2])
		k := id / r.perTable
		if r.rows[k] == nil {
			r.rows[k] = map[string]int{}
		}
		r.rows[k][sub[1]]++
		if c, err := pglogrepl.ParseLSN(m.Header.Get(walheader.CommitLSN)); err == nil {
			r.commit[k] = c
		}
	}
}

func (r *txnRows) complete(k int) bool {
	return r.rows[k]["a"] == r.perTable && r.rows[k]["b"] == r.perTable
}

// TestFullStreamMidBatch fills a small stream (discard new) with batches
// that each hold parts of several transactions, every transaction writing
// to two tables, so that one table's batch is stored and the other's is
// refused. The slot is never confirmed past a transaction that has a
// change without PubAck: when capture is killed in that state, every
// transaction at or below the confirmed position is whole in the stream;
// after draining the stream and restarting, every committed row is there.
func TestFullStreamMidBatch(t *testing.T) {
	const txns, perTable = 60, 20
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, `CREATE TABLE a (id int PRIMARY KEY, pad text); CREATE TABLE b (id int PRIMARY KEY, pad text)`)
	env := liveEnv(url, ns.URL(), "midbatch")
	env["REDMS_STREAM_MAX_BYTES"] = strconv.Itoa(128 << 10)
	env["REDMS_BATCH_BYTES"] = strconv.Itoa(12 << 10)
	env["REDMS_BATCH_LINGER"] = "20ms"
	env["REDMS_ACK_TIMEOUT"] = "2s"
	p := startCapture(t, env)
	testenv.Eventually(t, 30*time.Second, "slot", func() bool { return slotConfirmed(t, db, "midbatch") != 0 })
	for k := range txns {
		exec1(t, db, fmt.Sprintf(`BEGIN;
INSERT INTO a SELECT g, repeat(md5(g::text), 5) FROM generate_series(%[1]d, %[2]d) g;
INSERT INTO b SELECT g, repeat(md5(g::text), 5) FROM generate_series(%[1]d, %[2]d) g;
COMMIT`, k*perTable, k*perTable+perTable-1))
	}
	ctx := context.Background()
	st, err := js.Stream(ctx, "REDMS_WAL")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "stream full", func() bool {
		info, err := st.Info(ctx)
		return err == nil && info.State.Bytes > (128<<10)-(24<<10) && strings.Contains(p.Log.String(), "publish retry")
	})
	// Let capture confirm what it will.
	time.Sleep(time.Second)
	confirmed := slotConfirmed(t, db, "midbatch")
	p.Kill()
	if after := slotConfirmed(t, db, "midbatch"); after != confirmed {
		t.Fatalf("slot moved from %s to %s while killing", confirmed, after)
	}

	stored := newTxnRows(perTable)
	seen := map[string]bool{}
	stored.add(t, readChanges(t, js, "REDMS_WAL"), seen)
	last := -1 // the newest transaction at or below the confirmed position
	partial := 0
	for k := range txns {
		if c, ok := stored.commit[k]; ok && c <= confirmed {
			last = k
		}
		if len(stored.rows[k]) > 0 && !stored.complete(k) {
			partial++
		}
	}
	t.Logf("killed with the slot at %s: transactions 0…%d at or below it, %d of %d partly in the stream", confirmed, last, partial, txns)
	if last < 0 {
		t.Fatalf("nothing confirmed: the stream took no whole transaction")
	}
	for k := 0; k <= last; k++ {
		if !stored.complete(k) {
			t.Errorf("transaction %d is at or below the confirmed %s but the stream holds only %v of its %d rows per table", k, confirmed, stored.rows[k], perTable)
		}
	}

	// Drain and restart: everything arrives.
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "drain", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	all := newTxnRows(perTable)
	allSeen := map[string]bool{}
	drain := func() {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			return
		}
		for m := range batch.Messages() {
			all.add(t, changes(t, []streamMsg{{Subject: m.Subject(), Header: m.Headers(), Data: string(m.Data())}}), allSeen)
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatalf("ack: %v", err)
			}
		}
	}
	startCapture(t, env)
	testenv.Eventually(t, 2*time.Minute, "every row after the restart", func() bool {
		drain()
		return len(allSeen) == 2*txns*perTable
	})
	for k := range txns {
		if !all.complete(k) {
			t.Errorf("transaction %d: %v rows per table, want %d", k, all.rows[k], perTable)
		}
	}
}

// missingByPosition lists the source's changes the stream lacks, judged by
// position: a change is there when a record on its subject has its
// position and text, or — the first transaction a new session reads, whose
// base may be higher than it was (docs/DESIGN.md §2.3) — its index and
// text at a higher base. rebased counts the transactions found so.
func missingByPosition(t *testing.T, recs []streamMsg, ref []refChange) (missing []refChange, rebased map[int]bool) {
	t.Helper()
	type subjText struct {
		subject, text string
		index         uint64
	}
	at := map[subjPos]string{}
	bases := map[subjText][]uint64{}
	for _, r := range recs {
		p := posOf(t, 0, r)
		at[subjPos{r.Subject, p}] = r.Data
		k := subjText{r.Subject, r.Data, p.Index}
		bases[k] = append(bases[k], p.Base)
	}
	rebased = map[int]bool{}
	for _, e := range ref {
		if at[subjPos{e.subject, e.pos}] == e.text {
			continue
		}
		found := false
		for _, b := range bases[subjText{e.subject, e.text, e.pos.Index}] {
			found = found || b > e.pos.Base
		}
		if found {
			rebased[e.txn] = true
			continue
		}
		missing = append(missing, e)
	}
	return missing, rebased
}

// TestKill9Backlog kills capture with SIGKILL while it drains a backlog
// and starts it again: every change the source decoded is in the stream
// at least once, judged by position.
func TestKill9Backlog(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, `SELECT pg_create_logical_replication_slot('backlog', 'test_decoding')`)
	exec1(t, db, `SELECT pg_create_logical_replication_slot('ref', 'test_decoding')`)
	start := slotConfirmed(t, db, "backlog")
	n := benchLoad(t, url, 10_000)
	ref, _ := refChanges(t, db, "ref", "shop", start)
	if len(ref) != n {
		t.Fatalf("the reference slot decoded %d changes, the load made %d", len(ref), n)
	}
	env := liveEnv(url, ns.URL(), "backlog")
	p := startBinary(t, *plainBin, env)
	waitStreamHolds(t, js, n/3, 2*time.Minute)
	p.Kill()
	t.Logf("killed capture with %d of %d changes in the stream, slot at %s", streamChanges(t, js, "REDMS_WAL"), n, slotConfirmed(t, db, "backlog"))
	startBinary(t, *plainBin, env)
	var (
		missing []refChange
		rebased map[int]bool
		recs    []streamMsg
	)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		recs = readChanges(t, js, "REDMS_WAL")
		if missing, rebased = missingByPosition(t, recs, ref); len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%d changes in the stream for %d decoded; transactions found at a higher base: %v", len(recs), n, rebased)
	for i, e := range missing {
		if i == 10 {
			t.Errorf("… %d missing in all", len(missing))
			break
		}
		t.Errorf("missing: %s %s %.60q", e.subject, e.pos, e.text)
	}
	if len(rebased) > 0 {
		t.Errorf("%d transactions found only at another base: a transaction read again must get its first position (docs/DESIGN.md §2.3)", len(rebased))
	}
}
