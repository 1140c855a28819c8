package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

// TestLostSlot: a slot that disappears after capture read it (failover,
// max_slot_wal_keep_size) is not silently created again — everything
// between would be gone. Capture refuses, naming the last confirmed
// position, until REDMS_SLOT_CREATE=always; REDMS_SLOT_CREATE=never refuses
// to create any slot.
func TestLostSlot(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, `CREATE TABLE t (id int PRIMARY KEY)`)
	env := liveEnv(url, ns.URL(), "lost")
	p := startCapture(t, env)
	testenv.Eventually(t, 30*time.Second, "slot", func() bool { return slotConfirmed(t, db, "lost") != 0 })
	exec1(t, db, `INSERT INTO t VALUES (1)`)
	waitStreamHolds(t, js, 1, 30*time.Second)
	end := currentLSN(t, db)
	testenv.Eventually(t, 30*time.Second, "slot confirmed", func() bool { return slotConfirmed(t, db, "lost") >= end })
	if err := p.Stop(15 * time.Second); err != nil {
		t.Fatalf("capture exit: %v", err)
	}
	confirmed := slotConfirmed(t, db, "lost")
	testenv.Eventually(t, 30*time.Second, "the walsender gone", func() bool {
		var active bool
		err := db.QueryRow(context.Background(), "SELECT active FROM pg_replication_slots WHERE slot_name = 'lost'").Scan(&active)
		return err == nil && !active
	})
	exec1(t, db, `SELECT pg_drop_replication_slot('lost')`)
	exec1(t, db, `INSERT INTO t VALUES (2)`) // lost with the slot

	p = startCapture(t, env)
	if err := p.WaitExit(30 * time.Second); err == nil {
		t.Errorf("capture exited 0 on a lost slot")
	}
	stderr := p.Log.String()
	for _, w := range []string{"slot lost is missing", confirmed.String(), "snapshot", "REDMS_SLOT_CREATE=always"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
	if slotConfirmed(t, db, "lost") != 0 {
		t.Fatal("capture created the lost slot")
	}

	// Told to, it creates the slot, says loudly what may be missing, and
	// captures from now on.
	env["REDMS_SLOT_CREATE"] = "always"
	p = startCapture(t, env)
	testenv.Eventually(t, 30*time.Second, "slot created", func() bool { return slotConfirmed(t, db, "lost") != 0 })
	exec1(t, db, `INSERT INTO t VALUES (3)`)
	waitStreamHolds(t, js, 2, 30*time.Second)
	if err := p.Stop(15 * time.Second); err != nil {
		t.Fatalf("capture exit: %v", err)
	}
	stderr = p.Log.String()
	if l := grepLines(stderr, confirmed.String()); !strings.Contains(l, `"level":"ERROR"`) || !strings.Contains(l, "snapshot") {
		t.Errorf("creating the slot again was not loud about %s:\n%s", confirmed, stderr)
	}

	// never: no slot is created, evidence or not.
	env = liveEnv(url, ns.URL(), "fresh")
	env["REDMS_SLOT_CREATE"] = "never"
	p = startCapture(t, env)
	if err := p.WaitExit(30 * time.Second); err == nil {
		t.Errorf("capture exited 0 without a slot and REDMS_SLOT_CREATE=never")
	}
	if !strings.Contains(p.Log.String(), "slot fresh is missing") || slotConfirmed(t, db, "fresh") != 0 {
		t.Errorf("REDMS_SLOT_CREATE=never: slot %s, stderr:\n%s", slotConfirmed(t, db, "fresh"), p.Log.String())
	}
}

// TestDryRunDoesNotCreateSlot: --dry-run cannot read the slot's record
// (no NATS), so it creates no slot: one it created would hide a lost slot
// from the next real run.
func TestDryRunDoesNotCreateSlot(t *testing.T) {
	pg := testenv.StartPostgres(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	p := startCapture(t, liveEnv(url, "nats://127.0.0.1:1", "dry"), "--dry-run")
	if err := p.WaitExit(30 * time.Second); err == nil {
		t.Error("dry run exited 0 without a slot")
	}
	if !strings.Contains(p.Log.String(), "slot dry is missing") || slotConfirmed(t, db, "dry") != 0 {
		t.Errorf("slot %s, stderr:\n%s", slotConfirmed(t, db, "dry"), p.Log.String())
	}
}
