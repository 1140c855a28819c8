package main

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

// TestSecondSignalKills: while capture waits for PubAcks after a SIGTERM
// (NATS is down, REDMS_SHUTDOWN_TIMEOUT is long), a second SIGTERM ends the
// process at once, as an operator who presses Ctrl-C twice expects.
func TestSecondSignalKills(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, "CREATE TABLE t (id int PRIMARY KEY)")
	env := liveEnv(url, ns.URL(), "twice")
	env["REDMS_SHUTDOWN_TIMEOUT"] = "2m"
	env["REDMS_METRICS_ADDR"] = testenv.FreeAddr(t)
	p := startCapture(t, env)
	metrics := "http://" + env["REDMS_METRICS_ADDR"] + "/metrics"
	testenv.Eventually(t, 30*time.Second, "slot", func() bool { return slotConfirmed(t, db, "twice") != 0 })
	exec1(t, db, "INSERT INTO t VALUES (1)")
	testenv.Eventually(t, 30*time.Second, "the first change stored", func() bool { return streamCount(t, js, "REDMS_WAL") == 1 })

	ns.Stop()
	exec1(t, db, "INSERT INTO t VALUES (2)")
	testenv.Eventually(t, 30*time.Second, "a publish waiting for its PubAck", func() bool {
		return hasLine(httpGet(t, metrics), "redms_capture_inflight_messages 1")
	})
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The metrics server stops as soon as the first signal is handled.
	testenv.Eventually(t, 30*time.Second, "the metrics server to stop after the first SIGTERM", func() bool {
		resp, err := http.Get(metrics)
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	})
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := p.WaitExit(3 * time.Minute)
	if p.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Fatalf("capture after a second SIGTERM: exit %v (code %d), want killed by SIGTERM (the second signal must not wait for the shutdown timeout)", err, p.ExitCode())
	}
}
