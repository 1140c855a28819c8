package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

// TestSlotWithOtherPlugin: an existing slot of another plugin is a clear
// startup error, and the slot is left alone.
func TestSlotWithOtherPlugin(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, "SELECT pg_create_logical_replication_slot('other', 'pgoutput')")
	p := startCapture(t, liveEnv(url, ns.URL(), "other"))
	if err := p.WaitExit(30 * time.Second); err == nil {
		t.Fatal("capture exited 0 with a pgoutput slot")
	}
	if s := p.Log.String(); !strings.Contains(s, `slot other: slot uses another output plugin: \"pgoutput\", want \"test_decoding\"`) {
		t.Errorf("stderr does not explain the plugin:\n%s", s)
	}
	var plugin string
	if err := db.QueryRow(context.Background(), "SELECT plugin FROM pg_replication_slots WHERE slot_name = 'other'").Scan(&plugin); err != nil || plugin != "pgoutput" {
		t.Errorf("slot changed: %q, %v", plugin, err)
	}
}

// TestSlotOfAnotherDatabase: a slot of the same name made for another
// database is a clear startup error.
func TestSlotOfAnotherDatabase(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	other := pg.CreateDatabase(t, "other")
	exec1(t, connect(t, other), "SELECT pg_create_logical_replication_slot('shared', 'test_decoding')")
	url := pg.CreateDatabase(t, "shop")
	p := startCapture(t, liveEnv(url, ns.URL(), "shared"))
	if err := p.WaitExit(30 * time.Second); err == nil {
		t.Fatal("capture exited 0 with a slot of another database")
	}
	if s := p.Log.String(); !strings.Contains(s, `slot shared: slot is not usable: it belongs to database \"other\"`) {
		t.Errorf("stderr does not explain the database:\n%s", s)
	}
}

// TestStreamMismatch: an existing stream that would break the design is a
// startup error naming what differs, and the stream is not edited.
func TestStreamMismatch(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "REDMS_WAL", Subjects: []string{"redms.wal.>"},
		Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	url := pg.CreateDatabase(t, "shop")
	p := startCapture(t, liveEnv(url, ns.URL(), "s"))
	if err := p.WaitExit(30 * time.Second); err == nil {
		t.Fatal("capture exited 0 with a limits/discard-old stream")
	}
	s := p.Log.String()
	for _, want := range []string{"stream REDMS_WAL does not fit redms", "retention is Limits, want workqueue", "discard policy is DiscardOld, want new"} {
		if !strings.Contains(s, want) {
			t.Errorf("stderr lacks %q:\n%s", want, s)
		}
	}
	st, err := js.Stream(ctx, "REDMS_WAL")
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().Config; c.Retention != jetstream.LimitsPolicy || c.Discard != jetstream.DiscardOld {
		t.Errorf("stream was edited: %+v", c)
	}
	if n := slotConfirmed(t, connect(t, url), "s"); n != 0 {
		t.Errorf("slot created although the stream was refused")
	}
}

// TestLiveDryRun reads the slot, writes JSON, publishes nothing and never
// moves the slot.
func TestLiveDryRun(t *testing.T) {
	pg := testenv.StartPostgres(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	exec1(t, db, "SELECT pg_create_logical_replication_slot('dry', 'test_decoding')")
	before := slotConfirmed(t, db, "dry")
	exec1(t, db, "INSERT INTO t VALUES (1, 'x')")
	env := liveEnv(url, "nats://127.0.0.1:1", "dry") // no NATS needed
	p := startCapture(t, env, "--dry-run")
	testenv.Eventually(t, 30*time.Second, "a JSON line", func() bool { return strings.Contains(p.stdout.String(), "\n") })
	time.Sleep(time.Second) // several status updates
	if err := p.Stop(15 * time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	want := `{"database":"shop","schema":"public","table":"t","op":"OP_INSERT","columns":[{"name":"id","type":"integer","value":"1"},{"name":"v","type":"text","value":"x"}]`
	if !strings.HasPrefix(p.stdout.String(), want) {
		t.Errorf("stdout %q, want it to start with %q", p.stdout.String(), want)
	}
	if after := slotConfirmed(t, db, "dry"); after != before {
		t.Errorf("dry run moved the slot from %s to %s", before, after)
	}
}
