package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
)

// waitForBody waits until the stream holds a message whose body contains
// marker and returns the stream's messages.
func waitForBody(t *testing.T, js jetstream.JetStream, marker string) []streamMsg {
	t.Helper()
	var msgs []streamMsg
	testenv.Eventually(t, 30*time.Second, "a message with "+marker, func() bool {
		msgs = readStream(t, js, "REDMS_WAL")
		for _, m := range msgs {
			if strings.Contains(m.Data, marker) {
				return true
			}
		}
		return false
	})
	return msgs
}

// TestMissingValues: a column added with a constant default fills existing
// rows without WAL; capture sends that value (attmissingval) as
// Redms-Missing once the column set changes. A NULL default needs none; a
// volatile default makes Postgres rewrite the table, which leaves no
// missing values.
func TestMissingValues(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, `CREATE TABLE m (id int PRIMARY KEY); INSERT INTO m VALUES (0)`)
	startCapture(t, liveEnv(url, ns.URL(), "missing"))
	testenv.Eventually(t, 30*time.Second, "slot", func() bool { return slotConfirmed(t, db, "missing") != 0 })
	// capture reads the catalog as it is when it decodes: each change is
	// published before the next ALTER.
	exec1(t, db, `INSERT INTO m VALUES (1)`)
	waitForBody(t, js, "id[integer]:1")
	exec1(t, db, `ALTER TABLE m ADD COLUMN c int DEFAULT 5, ADD COLUMN d text DEFAULT 'it''s, "x"', ADD COLUMN e int DEFAULT NULL`)
	exec1(t, db, `INSERT INTO m VALUES (2)`)
	waitForBody(t, js, "id[integer]:2 ")
	exec1(t, db, `ALTER TABLE m ADD COLUMN f float8 DEFAULT random()`)
	exec1(t, db, `INSERT INTO m VALUES (3)`)
	msgs := waitForBody(t, js, "id[integer]:3 ")
	want := []string{"", `{"c":"5","d":"it's, \"x\""}`, ""}
	if len(msgs) != len(want) {
		t.Fatalf("%d messages, want %d", len(msgs), len(want))
	}
	for i, w := range want {
		if got := msgs[i].Header.Get(walheader.Missing); got != w {
			t.Errorf("message %d (%.50q): %s %q, want %q", i, msgs[i].Data, walheader.Missing, got, w)
		}
	}
}

// TestDeclaredTypes: Redms-Types names the declared type of every column
// whose type has a modifier (test_decoding prints types without one).
func TestDeclaredTypes(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, `
CREATE TABLE ty (id int PRIMARY KEY, a numeric(10,2), b varchar(20), c char(3), d text, e timestamp(3), f numeric, g varchar(5)[], "odd ""col""" bit(4));
CREATE TABLE plain (id int PRIMARY KEY, v text);
`)
	startCapture(t, liveEnv(url, ns.URL(), "types"))
	testenv.Eventually(t, 30*time.Second, "slot", func() bool { return slotConfirmed(t, db, "types") != 0 })
	exec1(t, db, `INSERT INTO ty (id) VALUES (1); INSERT INTO plain VALUES (1, 'x')`)
	msgs := waitForBody(t, js, "public.plain")
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	want := `{"a":"numeric(10,2)","b":"character varying(20)","c":"character(3)","e":"timestamp(3) without time zone","g":"character varying(5)[]","odd \"col\"":"bit(4)"}`
	if got := msgs[0].Header.Get(walheader.Types); got != want {
		t.Errorf("%s %s, want %s", walheader.Types, got, want)
	}
	if got, ok := msgs[1].Header[walheader.Types]; ok {
		t.Errorf("a table without type modifiers has %s %v", walheader.Types, got)
	}
}

// TestKeyAppearsLater: pgbench -i and pg_restore create a table, load it,
// and only then add the primary key. A table whose lookup found no key is
// looked up again (at most once a second), so the key travels from then on.
func TestKeyAppearsLater(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, `CREATE TABLE acc (id int NOT NULL, v int)`)
	startCapture(t, liveEnv(url, ns.URL(), "latekey"))
	testenv.Eventually(t, 30*time.Second, "slot", func() bool { return slotConfirmed(t, db, "latekey") != 0 })
	exec1(t, db, `INSERT INTO acc VALUES (1, 1)`)
	msgs := waitForBody(t, js, "id[integer]:1 ")
	if got := msgs[0].Header.Get(walheader.Keys); got != "[]" {
		t.Fatalf("keys before the primary key exists: %s, want []", got)
	}
	exec1(t, db, `ALTER TABLE acc ADD PRIMARY KEY (id)`)
	keyed := func(msgs []streamMsg) int {
		for i, m := range msgs {
			if m.Header.Get(walheader.Keys) == `["id"]` {
				return i
			}
		}
		return -1
	}
	n := 1
	testenv.Eventually(t, 30*time.Second, "a message with the new key", func() bool {
		n++
		exec1(t, db, fmt.Sprintf(`INSERT INTO acc VALUES (%d, 1); UPDATE acc SET v = v + 1 WHERE id = 1`, n))
		time.Sleep(100 * time.Millisecond)
		return keyed(readStream(t, js, "REDMS_WAL")) >= 0
	})
	msgs = readStream(t, js, "REDMS_WAL")
	first := keyed(msgs)
	for i := first; i < len(msgs); i++ {
		if got := msgs[i].Header.Get(walheader.Keys); got != `["id"]` || msgs[i].Header.Get(walheader.KeySource) != walheader.KeySourcePrimaryKey {
			t.Errorf("message %d after the key appeared: keys %s source %s", i, got, msgs[i].Header.Get(walheader.KeySource))
		}
	}
}
