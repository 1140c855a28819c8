package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

// standbyCapture is one of several captures on one slot, each reaching
// Postgres through a proxy of its own so that its connection alone can be
// cut or silenced.
type standbyCapture struct {
	name    string
	p       *captureProc
	proxy   *testenv.Proxy
	metrics string // host:port
}

func startStandbyCapture(t *testing.T, name string, pg *testenv.Postgres, natsURL, slot string) *standbyCapture {
	t.Helper()
	proxy := testenv.StartProxy(t, pg.Addr())
	// connect_timeout: a connection attempt through a silent network ends.
	env := liveEnv(fmt.Sprintf("postgres://postgres@%s/shop?sslmode=disable&connect_timeout=5", proxy.Addr()), natsURL, slot)
	env["REDMS_METRICS_ADDR"] = testenv.FreeAddr(t)
	return &standbyCapture{name: name, p: startCapture(t, env), proxy: proxy, metrics: env["REDMS_METRICS_ADDR"]}
}

// ready reports whether /readyz answers 200.
func (c *standbyCapture) ready() bool {
	client := http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + c.metrics + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// standby reports whether redms_capture_standby is 1.
func (c *standbyCapture) standby() bool {
	m, err := testenv.Scrape(c.metrics)
	if err != nil {
		return false
	}
	v, ok := m.Value("redms_capture_standby")
	return ok && v == 1
}

// waitStandby waits until c says it stands by in its log, its metric and
// /readyz (503).
func (c *standbyCapture) waitStandby(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, time.Minute, c.name+" standing by", func() bool {
		return hasLine(c.p.Log.String(), "standing by") && c.standby() && !c.ready()
	})
}

// takeover waits until c is ready (it streams the slot) and returns how
// long that took since from.
func (c *standbyCapture) takeover(t *testing.T, from time.Time, limit time.Duration) time.Duration {
	t.Helper()
	testenv.Eventually(t, limit, c.name+" taking over", func() bool { return c.ready() && !c.standby() })
	return time.Since(from)
}

// TestStandbyTakesOver runs captures on one slot under load: one streams,
// the other stands by; the active one is SIGKILLed, SIGSTOPped past
// wal_sender_timeout, and cut off by a silent network, and each time a
// standby takes over with no operator, within wal_sender_timeout and a
// few seconds, and every committed change reaches the stream.
func TestStandbyTakesOver(t *testing.T) {
	const walSenderTimeout = 5 * time.Second
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, loadTable)
	exec1(t, db, fmt.Sprintf("ALTER SYSTEM SET wal_sender_timeout = '%dms'", walSenderTimeout.Milliseconds()))
	exec1(t, db, "SELECT pg_reload_conf()")

	a := startStandbyCapture(t, "a", pg, ns.URL(), "standby")
	a.p.WaitReady(a.metrics, time.Minute)
	b := startStandbyCapture(t, "b", pg, ns.URL(), "standby")
	b.waitStandby(t)
	if a.standby() || !a.ready() {
		t.Fatal("a stopped streaming when b started")
	}

	// About a minute of load: it runs through every failover.
	l := startPacedLoad(t, url, 40_000, 50, 60*time.Millisecond)
	waitStreamHolds(t, js, 1_000, time.Minute)

	// 1. SIGKILL: the kernel closes the connection, the server frees the
	// slot at once; b takes it at its next try.
	killed := time.Now()
	a.p.Kill()
	tKill := b.takeover(t, killed, walSenderTimeout+10*time.Second)
	c := startStandbyCapture(t, "c", pg, ns.URL(), "standby")
	c.waitStandby(t)

	// 2. SIGSTOP: the connection stays open and says nothing; the server
	// ends the session after wal_sender_timeout.
	n := streamChanges(t, js, "REDMS_WAL")
	waitStreamHolds(t, js, n+500, time.Minute)
	if err := b.p.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	tStop := c.takeover(t, paused, walSenderTimeout+10*time.Second)
	if err := b.p.Resume(); err != nil {
		t.Fatal(err)
	}
	// Woken, b finds its session ended and stands by again.
	b.waitStandby(t)
	if !c.ready() {
		t.Fatal("c stopped streaming when b woke up")
	}

	// 3. A silent network between c and Postgres: the server ends c's
	// session after wal_sender_timeout, c ends its own after hearing
	// nothing for as long, and b takes over.
	n = streamChanges(t, js, "REDMS_WAL")
	waitStreamHolds(t, js, n+500, time.Minute)
	c.proxy.Stall()
	stalled := time.Now()
	tStall := b.takeover(t, stalled, walSenderTimeout+10*time.Second)
	testenv.Eventually(t, walSenderTimeout+10*time.Second, "c noticing the silence", func() bool {
		return hasLine(c.p.Log.String(), "replication connection silent") && !c.ready()
	})
	tSilent := time.Since(stalled)
	c.proxy.Unstall()
	c.waitStandby(t)

	if l.attempted.Load() >= int64(l.total) {
		t.Error("the load ended before the last failover: it proves less than it claims")
	}
	l.wait(t, 3*time.Minute)
	want, total := expectedVersions(t, url)
	waitAllSeen(t, js, want, 2*time.Minute).verify(t, want, total)
	t.Logf("wal_sender_timeout %s; standby took over %s after SIGKILL, %s after SIGSTOP, %s after the network went silent (the silenced capture gave up after %s)",
		walSenderTimeout, tKill.Round(10*time.Millisecond), tStop.Round(10*time.Millisecond), tStall.Round(10*time.Millisecond), tSilent.Round(10*time.Millisecond))
	for _, p := range []*standbyCapture{b, c} {
		select {
		case <-p.p.Done():
			t.Errorf("capture %s exited: %v", p.name, p.p.Err())
		default:
		}
	}
}
