package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
)

// posOf parses a message's Redms-Pos, failing the test when it is missing.
func posOf(t *testing.T, i int, m streamMsg) walheader.Pos {
	t.Helper()
	v := m.Header.Get(walheader.FirstPos)
	p, err := walheader.ParsePos(v)
	if err != nil {
		t.Fatalf("message %d (%s %.60q): %s %q: %v", i, m.Subject, m.Data, walheader.FirstPos, v, err)
	}
	return p
}

// checkPrevChain checks that every message's Redms-Prev-Pos is the (last)
// position of the message before it on its subject, and that the first
// message of each subject after from (a session start) has none.
func checkPrevChain(t *testing.T, msgs []streamMsg, from int) {
	t.Helper()
	last := map[string]walheader.Pos{}
	for i := from; i < len(msgs); i++ {
		m := msgs[i]
		prev, hasPrev := m.Header[walheader.PrevPos]
		want, seen := last[m.Subject]
		switch {
		case !seen && hasPrev:
			t.Errorf("message %d (%s): first of its subject in the session, but %s %v", i, m.Subject, walheader.PrevPos, prev)
		case seen && !hasPrev:
			t.Errorf("message %d (%s): no %s, want %s", i, m.Subject, walheader.PrevPos, want)
		case seen && prev[0] != want.String():
			t.Errorf("message %d (%s): %s %s, want %s", i, m.Subject, walheader.PrevPos, prev[0], want)
		}
		last[m.Subject] = posOf(t, i, m)
		if v := m.Header.Get(walheader.LastPos); v != "" {
			p, err := walheader.ParsePos(v)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			last[m.Subject] = p
		}
	}
}

// bySubject groups records in stream order per subject.
func bySubject(recs []streamMsg) map[string][]streamMsg {
	out := map[string][]streamMsg{}
	for _, r := range recs {
		out[r.Subject] = append(out[r.Subject], r)
	}
	return out
}

// checkIDs checks every message's Nats-Msg-Id: its subject and positions
// (docs/CONTRACTS.md), unique in the stream.
func checkIDs(t *testing.T, msgs []streamMsg) {
	t.Helper()
	ids := map[string]bool{}
	for i, m := range msgs {
		id := m.Header.Get(walheader.MsgID)
		want := m.Subject + ":" + m.Header.Get(walheader.FirstPos)
		if last := m.Header.Get(walheader.LastPos); last != "" {
			want += "-" + last
		}
		if p := m.Header.Get(walheader.Part); p != "" {
			want += ":p" + strings.Split(p, "/")[0]
		}
		if id != want || ids[id] {
			t.Errorf("message %d (%s): id %q, want unique %q", i, m.Subject, id, want)
		}
		ids[id] = true
	}
}

// TestPositions reads one stretch of WAL through two slots that start at
// the same point (a copy): every change gets the same position and prev
// from both, however the batches were cut. Positions strictly increase
// per subject in commit order across interleaved concurrent transactions,
// index counting a transaction's records on the subject (so two tables'
// changes of one transaction can share a position, and their ids differ
// by subject); the parts of a transaction larger than REDMS_TXN_BUFFER
// carry them; each table of a TRUNCATE takes its subject's next index;
// prev chains each subject.
func TestPositions(t *testing.T) {
	pg := testenv.StartPostgres(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, `
CREATE TABLE a (id int PRIMARY KEY, v text);
CREATE TABLE b (id int PRIMARY KEY, v text);
CREATE TABLE secret (id int PRIMARY KEY);
`)
	exec1(t, db, `SELECT pg_create_logical_replication_slot('pos_one', 'test_decoding')`)
	exec1(t, db, `SELECT pg_copy_logical_replication_slot('pos_one', 'pos_two')`)
	start := slotConfirmed(t, db, "pos_one")
	if two := slotConfirmed(t, db, "pos_two"); two != start {
		t.Fatalf("copied slot starts at %s, the original at %s", two, start)
	}

	exec1(t, db, `INSERT INTO a VALUES (1, 'first')`)
	// Two transactions interleave; the later BEGIN commits first.
	c1, c2 := connect(t, url), connect(t, url)
	exec1(t, c1, `BEGIN; INSERT INTO a VALUES (10, 'one')`)
	exec1(t, c2, `BEGIN; INSERT INTO b VALUES (20, 'two')`)
	exec1(t, c1, `INSERT INTO b VALUES (11, 'one')`)
	exec1(t, c2, `INSERT INTO secret VALUES (1); INSERT INTO a VALUES (21, 'two')`)
	exec1(t, c2, `COMMIT`)
	exec1(t, c1, `COMMIT`)
	// Larger than REDMS_TXN_BUFFER (5): published in parts before COMMIT.
	exec1(t, db, `INSERT INTO a SELECT g, 'big' FROM generate_series(100, 111) g`)
	exec1(t, db, `TRUNCATE a, b`)
	exec1(t, db, `INSERT INTO b VALUES (30, 'last')`)
	const want = 1 + 2 + 2 + 12 + 2 + 1

	read := func(slot, records string) ([]streamMsg, []streamMsg) {
		ns := testenv.StartNATS(t)
		_, js := ns.Connect(t)
		env := liveEnv(url, ns.URL(), slot)
		env["REDMS_TXN_BUFFER"] = "5"
		env["REDMS_EXCLUDE_TABLES"] = "public.secret"
		env["REDMS_BATCH_RECORDS"] = records
		p := startCapture(t, env)
		waitStreamHolds(t, js, want, time.Minute)
		if err := p.Stop(15 * time.Second); err != nil {
			t.Fatalf("capture on %s: %v", slot, err)
		}
		msgs := readStream(t, js, "REDMS_WAL")
		recs := changes(t, msgs)
		if len(recs) != want {
			t.Fatalf("slot %s: %d changes, want %d", slot, len(recs), want)
		}
		return msgs, recs
	}
	msgsOne, one := read("pos_one", "1000")
	msgsTwo, two := read("pos_two", "3") // cut otherwise: the positions do not depend on it
	t.Logf("%d changes in %d messages (batches of up to 1000), %d (up to 3)", want, len(msgsOne), len(msgsTwo))
	checkIDs(t, msgsOne)
	checkIDs(t, msgsTwo)
	if len(msgsTwo) <= len(msgsOne) {
		t.Errorf("%d messages of at most 3 changes, %d of up to 1000: the batch limits did not apply", len(msgsTwo), len(msgsOne))
	}

	oneBy, twoBy := bySubject(one), bySubject(two)
	for subj, recs := range oneBy {
		if len(twoBy[subj]) != len(recs) {
			t.Fatalf("%s: %d changes read once, %d read again", subj, len(recs), len(twoBy[subj]))
		}
		for i, r := range recs {
			r2 := twoBy[subj][i]
			for _, h := range []string{walheader.FirstPos, walheader.PrevPos} {
				if a, b := r.Header.Get(h), r2.Header.Get(h); a != b || r.Data != r2.Data {
					t.Errorf("%s change %d: %s %q (%.40q) read once, %q (%.40q) read again", subj, i, h, a, r.Data, b, r2.Data)
				}
			}
		}
	}

	// What the source did, per change: its transaction (in commit order)
	// and its index on its subject.
	type step struct {
		txn   int
		index uint64
	}
	steps := map[string]step{
		"a:INSERT: id[integer]:1 ":  {0, 0},
		"b:INSERT: id[integer]:20 ": {1, 0}, "a:INSERT: id[integer]:21 ": {1, 0}, // secret's change counts on its own subject only
		"a:INSERT: id[integer]:10 ": {2, 0}, "b:INSERT: id[integer]:11 ": {2, 0},
		"a:TRUNCATE": {4, 0}, "b:TRUNCATE": {4, 0}, // each table at its subject's next index
		"b:INSERT: id[integer]:30 ": {5, 0},
	}
	for g := 0; g < 12; g++ {
		steps[fmt.Sprintf("a:INSERT: id[integer]:%d ", 100+g)] = step{3, uint64(g)}
	}
	stepOf := func(r streamMsg) (string, step) {
		tbl := r.Subject[strings.LastIndexByte(r.Subject, '.')+1:]
		for k, s := range steps {
			if strings.HasPrefix(k, tbl+":") && strings.Contains(r.Data, k[len(tbl)+1:]) {
				return k, s
			}
		}
		t.Fatalf("unexpected change %s %q", r.Subject, r.Data)
		return "", step{}
	}
	// A transaction's base is the end of its own COMMIT, whose LSN any of
	// its changes carrying it tells.
	commits := map[int]uint64{}
	for _, r := range one {
		if c := r.Header.Get(walheader.CommitLSN); c != "" {
			l, err := pglogrepl.ParseLSN(c)
			if err != nil {
				t.Fatal(err)
			}
			_, s := stepOf(r)
			commits[s.txn] = uint64(l)
		}
	}
	if len(commits) != 6 {
		t.Fatalf("commit LSNs of transactions %v, want all 6", commits)
	}
	seen := map[string]bool{}
	for _, r := range one {
		k, s := stepOf(r)
		if seen[k] {
			t.Errorf("change %s twice", k)
		}
		seen[k] = true
		base := commits[s.txn]
		if s.txn == 3 { // published before its COMMIT: one past the COMMIT before it
			base = commits[2] + 1
		}
		if p := posOf(t, 0, r); p != (walheader.Pos{Base: base, Index: s.index}) {
			t.Errorf("%s: position %s, want %s", k, p, walheader.Pos{Base: base, Index: s.index})
		}
		// The big transaction's last part is handed over with its COMMIT:
		// it carries it; earlier parts may not (their batch may close
		// before the COMMIT is read).
		if c := r.Header.Get(walheader.CommitLSN); (c == "" && (s.txn != 3 || s.index >= 10)) || (c != "" && c != pglogrepl.LSN(commits[s.txn]).String()) {
			t.Errorf("%s: %s %q, want %s", k, walheader.CommitLSN, c, pglogrepl.LSN(commits[s.txn]))
		}
	}
	// Per subject: stream order is position order and prev chains it.
	for subj, recs := range oneBy {
		for i := 1; i < len(recs); i++ {
			if !posOf(t, i-1, recs[i-1]).Less(posOf(t, i, recs[i])) {
				t.Errorf("%s: change %d at %s not after %s", subj, i, recs[i].Header.Get(walheader.FirstPos), recs[i-1].Header.Get(walheader.FirstPos))
			}
		}
	}
	checkPrevChain(t, one, 0)
	checkPrevChain(t, msgsOne, 0)
}

// TestPrevChainResetsOnReconnect: after the replication connection drops,
// capture starts a new session whose first message per subject carries no
// prev (the old session's positions may not come again).
func TestPrevChainResetsOnReconnect(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)`)
	p := startCapture(t, liveEnv(url, ns.URL(), "chain"))
	testenv.Eventually(t, 30*time.Second, "slot", func() bool { return slotConfirmed(t, db, "chain") != 0 })
	exec1(t, db, `INSERT INTO a VALUES (1); INSERT INTO b VALUES (1); INSERT INTO a VALUES (2)`)
	waitStreamHolds(t, js, 3, 30*time.Second)
	end := currentLSN(t, db)
	testenv.Eventually(t, 30*time.Second, "slot confirmed", func() bool { return slotConfirmed(t, db, "chain") >= end })

	exec1(t, db, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'chain'`)
	testenv.Eventually(t, 30*time.Second, "reconnect", func() bool {
		return strings.Count(p.Log.String(), `"msg":"replication started"`) >= 2
	})
	exec1(t, db, `INSERT INTO b VALUES (2); INSERT INTO a VALUES (3); INSERT INTO b VALUES (3)`)
	waitStreamHolds(t, js, 6, 30*time.Second)
	msgs := readChanges(t, js, "REDMS_WAL")
	if len(msgs) != 6 {
		t.Fatalf("%d changes, want 6", len(msgs))
	}
	checkPrevChain(t, msgs[:3], 0)
	checkPrevChain(t, msgs, 3)
	for _, m := range msgs[:3] {
		if strings.Contains(m.Data, "id[integer]:2") && m.Header.Get(walheader.PrevPos) == "" {
			t.Error("the second change of a subject in one session has no prev")
		}
	}
}
