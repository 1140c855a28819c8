package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

// TestSlotWALNotKept: while NATS is down capture confirms nothing, the
// slot holds WAL back, and with max_slot_wal_keep_size Postgres stops
// keeping it. capture exports the retained WAL and the slot's wal_status,
// and says loudly, naming the snapshot runbook, that changes are lost.
func TestSlotWALNotKept(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, `CREATE TABLE big (id int PRIMARY KEY, pad text)`)
	env := liveEnv(url, ns.URL(), "keep")
	env["REDMS_METRICS_ADDR"] = testenv.FreeAddr(t)
	env["REDMS_SLOT_LAG_EVERY"] = "200ms"
	p := startCapture(t, env)
	p.WaitReady(env["REDMS_METRICS_ADDR"], time.Minute)
	gauge := func(series string) float64 {
		m, err := testenv.Scrape(env["REDMS_METRICS_ADDR"])
		if err != nil {
			return -1
		}
		v, ok := m.Value(series)
		if !ok {
			return -1
		}
		return v
	}
	testenv.Eventually(t, 30*time.Second, "wal_status reserved", func() bool {
		return gauge(`redms_capture_slot_wal_status{status="reserved"}`) == 1
	})

	ns.Stop()
	exec1(t, db, "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
	exec1(t, db, "SELECT pg_reload_conf()")
	for i := range 4 { // > 4 segments of 16 MiB past the slot
		exec1(t, db, fmt.Sprintf("INSERT INTO big SELECT g, repeat(md5(g::text), 100) FROM generate_series(%d, %d) g", i*10_000, i*10_000+9_999))
		exec1(t, db, "SELECT pg_switch_wal()")
	}
	testenv.Eventually(t, 30*time.Second, "retained WAL above 16 MiB", func() bool {
		return gauge("redms_capture_slot_retained_wal_bytes") > 16<<20
	})
	exec1(t, db, "CHECKPOINT")
	testenv.Eventually(t, time.Minute, "wal_status unreserved or lost, and an error naming the runbook", func() bool {
		lost := gauge(`redms_capture_slot_wal_status{status="unreserved"}`) == 1 || gauge(`redms_capture_slot_wal_status{status="lost"}`) == 1
		return lost && hasLine(p.Log.String(), "run the snapshot runbook")
	})
	if gauge(`redms_capture_slot_wal_status{status="reserved"}`) != 0 {
		t.Error("wal_status reserved still 1")
	}
	if l := grepLines(p.Log.String(), "slot WAL is not kept"); !hasLine(l, `"level":"ERROR"`) {
		t.Errorf("not an error: %s", l)
	}
}
