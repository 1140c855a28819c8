package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
)

// loadTable holds one row per id with a version that every update bumps, so
// the committed changes are, per row, versions 1..v of the final table.
const loadTable = `CREATE TABLE load (id int PRIMARY KEY, v int NOT NULL, pad text)`

// load runs transactions of batch inserts and updates until total changes
// were attempted or ctx ends. Errors (a restarted server, a cut connection)
// are retried on a new connection: the source table, not the generator,
// says what committed.
type load struct {
	url       string
	total     int
	batch     int
	pause     time.Duration // between transactions
	attempted atomic.Int64
	done      chan struct{}
	errs      atomic.Int64
}

func startLoad(t *testing.T, url string, total, batch int) *load {
	return startPacedLoad(t, url, total, batch, 0)
}

// startPacedLoad is startLoad with a pause after each transaction, for a
// load that lasts while a test does several things to capture.
func startPacedLoad(t *testing.T, url string, total, batch int, pause time.Duration) *load {
	l := &load{url: url, total: total, batch: batch, pause: pause, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	t.Cleanup(func() { cancel(); wg.Wait() })
	go func() {
		defer wg.Done()
		defer close(l.done)
		l.run(ctx)
	}()
	return l
}

func (l *load) run(ctx context.Context) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	nextID := 1
	for step := 0; int(l.attempted.Load()) < l.total && ctx.Err() == nil; step++ {
		if conn == nil {
			c, err := pgx.Connect(ctx, l.url)
			if err != nil {
				l.errs.Add(1)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			conn = c
		}
		var err error
		if step%2 == 0 || nextID < l.batch*2 {
			// A new batch of rows, version 1 (one multi-row insert).
			_, err = conn.Exec(ctx, `INSERT INTO load SELECT g, 1, repeat(md5(g::text), 5) FROM generate_series($1::int, $2::int) g`, nextID, nextID+l.batch-1)
			if err == nil {
				nextID += l.batch
			}
		} else {
			// Bump a batch of existing rows, spread over the table.
			from := (step * 7919) % (nextID - l.batch)
			_, err = conn.Exec(ctx, `UPDATE load SET v = v + 1 WHERE id >= $1 AND id < $2`, from, from+l.batch)
		}
		l.attempted.Add(int64(l.batch))
		if err != nil {
			l.errs.Add(1)
			conn.Close(context.Background())
			conn = nil
		}
		if l.pause > 0 {
			select {
			case <-time.After(l.pause):
			case <-ctx.Done():
			}
		}
	}
}

func (l *load) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(timeout):
		t.Fatalf("load did not finish in %s", timeout)
	}
}

// expected returns the committed changes: id -> final version.
func expectedVersions(t *testing.T, url string) (map[int]int, int) {
	t.Helper()
	c := connect(t, url)
	rows, err := c.Query(context.Background(), "SELECT id, v FROM load")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[int]int{}
	total := 0
	for rows.Next() {
		var id, v int
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		m[id] = v
		total += v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m, total
}

var idV = regexp.MustCompile(`id\[integer\]:(\d+) v\[integer\]:(\d+)`)

// changeKey is one committed change of the load table: row id, version.
type changeKey struct{ id, v int }

// seen collects the load changes found in the stream.
type seen struct {
	count   map[changeKey]int
	last    map[int]int           // id -> version of its message with the highest position
	lastPos map[int]walheader.Pos // id -> that position
	msgs    int
}

func newSeen() *seen {
	return &seen{count: map[changeKey]int{}, last: map[int]int{}, lastPos: map[int]walheader.Pos{}}
}

func (s *seen) add(t *testing.T, m streamMsg) {
	s.msgs++
	sub := idV.FindStringSubmatch(m.Data)
	if sub == nil {
		t.Errorf("unexpected message %s: %q", m.Subject, m.Data)
		return
	}
	id, _ := strconv.Atoi(sub[1])
	v, _ := strconv.Atoi(sub[2])
	s.count[changeKey{id, v}]++
	pos, err := walheader.ParsePos(m.Header.Get(walheader.FirstPos))
	if err != nil {
		t.Errorf("message %s %.40q: %v", m.Subject, m.Data, err)
		return
	}
	if old, ok := s.lastPos[id]; !ok || old.Less(pos) {
		s.last[id], s.lastPos[id] = v, pos
	}
}

// verify checks every committed change is present; duplicates (copies that
// Nats-Msg-Id dedup did not remove) are counted and logged, not hidden.
func (s *seen) verify(t *testing.T, want map[int]int, wantTotal int) {
	t.Helper()
	missing, dups := 0, 0
	var firstMissing []changeKey
	for id, final := range want {
		for v := 1; v <= final; v++ {
			n := s.count[changeKey{id, v}]
			if n == 0 {
				missing++
				if len(firstMissing) < 5 {
					firstMissing = append(firstMissing, changeKey{id, v})
				}
			}
			if n > 1 {
				dups += n - 1
			}
		}
	}
	extra := 0
	for k := range s.count {
		if k.v > want[k.id] {
			extra++
		}
	}
	// Per-row order: the message of each row with the highest source
	// position carries its final version, which is what the loader, which
	// orders by position, keeps (stream order may differ: docs/DESIGN.md
	// §2.3).
	outOfOrder := 0
	for id, final := range want {
		if v, ok := s.last[id]; ok && v != final {
			outOfOrder++
			if outOfOrder <= 5 {
				t.Errorf("row %d: the message with the highest position has version %d, final version is %d", id, v, final)
			}
		}
	}
	t.Logf("committed changes %d, messages %d, duplicates beyond dedup %d, rows whose newest position is stale %d", wantTotal, s.msgs, dups, outOfOrder)
	if missing > 0 {
		t.Errorf("%d committed changes missing from the stream, e.g. (id, version) %v", missing, firstMissing)
	}
	if extra > 0 {
		t.Errorf("%d changes in the stream that never committed", extra)
	}
}

// complete reports whether every committed change of want is in s.
func (s *seen) complete(want map[int]int) bool {
	for id, final := range want {
		for v := 1; v <= final; v++ {
			if s.count[changeKey{id, v}] == 0 {
				return false
			}
		}
	}
	return true
}

// waitAllSeen waits until the stream holds every committed change of want
// and returns what it holds. (Counting changes is no measure: a restart
// cuts batches differently, and a batch cut differently has its own id, so
// replays are stored again; the loader drops them by position.)
func waitAllSeen(t *testing.T, js jetstream.JetStream, want map[int]int, timeout time.Duration) *seen {
	t.Helper()
	var s *seen
	testenv.Eventually(t, timeout, "every committed change in the stream", func() bool {
		s = seenInStream(t, js)
		return s.complete(want)
	})
	return s
}

func seenInStream(t *testing.T, js jetstream.JetStream) *seen {
	s := newSeen()
	for _, m := range readChanges(t, js, "REDMS_WAL") {
		s.add(t, m)
	}
	return s
}

// TestKill9UnderLoad kills capture with SIGKILL in the middle of a 100k
// change load, restarts it, and checks every committed change reached the
// stream.
func TestKill9UnderLoad(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	exec1(t, connect(t, url), loadTable)
	env := liveEnv(url, ns.URL(), "kill9")
	p := startBinary(t, *plainBin, env)
	testenv.Eventually(t, 30*time.Second, "slot", func() bool { return slotConfirmed(t, connect(t, url), "kill9") != 0 })

	l := startLoad(t, url, 100_000, 100)
	waitStreamHolds(t, js, 30_000, 2*time.Minute)
	p.Kill()
	t.Logf("killed capture with %d messages in the stream, %d changes attempted", streamCount(t, js, "REDMS_WAL"), l.attempted.Load())
	startBinary(t, *plainBin, env)
	l.wait(t, 3*time.Minute)
	want, total := expectedVersions(t, url)
	if total < 90_000 {
		t.Fatalf("load committed only %d changes", total)
	}
	waitAllSeen(t, js, want, 3*time.Minute).verify(t, want, total)
}

// TestPostgresRestartUnderLoad restarts Postgres while capture reads under
// load: capture reconnects, resumes from the slot, and nothing is missing.
func TestPostgresRestartUnderLoad(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	exec1(t, connect(t, url), loadTable)
	env := liveEnv(url, ns.URL(), "pgrestart")
	p := startCapture(t, env)
	testenv.Eventually(t, 30*time.Second, "slot", func() bool { return slotConfirmed(t, connect(t, url), "pgrestart") != 0 })

	l := startLoad(t, url, 20_000, 50)
	waitStreamHolds(t, js, 5_000, time.Minute)
	pg.Stop(t)
	pg.Start(t)
	l.wait(t, 2*time.Minute)
	want, total := expectedVersions(t, url)
	waitAllSeen(t, js, want, 2*time.Minute).verify(t, want, total)
	select {
	case <-p.Done():
		t.Fatalf("capture exited: %v", p.Err())
	default:
	}
	if !hasLine(p.Log.String(), "replication session ended, reconnecting") {
		t.Error("capture did not notice the restart")
	}
}

// TestProxyCuts cuts capture's connections to Postgres and to NATS in the
// middle of the load; nothing is missing afterwards.
func TestProxyCuts(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	exec1(t, connect(t, url), loadTable)
	pgProxy := testenv.StartProxy(t, fmt.Sprintf("127.0.0.1:%d", pg.Port()))
	natsProxy := testenv.StartProxy(t, ns.URL()[len("nats://"):])
	env := liveEnv(fmt.Sprintf("postgres://postgres@%s/shop?sslmode=disable", pgProxy.Addr()), "nats://"+natsProxy.Addr(), "cuts")
	env["REDMS_ACK_TIMEOUT"] = "2s"
	env["REDMS_TXN_BUFFER"] = "200" // transactions of 500 are published in parts
	p := startCapture(t, env)
	testenv.Eventually(t, 30*time.Second, "slot", func() bool { return slotConfirmed(t, connect(t, url), "cuts") != 0 })

	l := startLoad(t, url, 30_000, 500) // large transactions: cuts land mid-transaction
	waitStreamHolds(t, js, 3_000, time.Minute)
	pgProxy.Cut()
	time.Sleep(time.Second)
	pgProxy.Restore()
	n := streamCount(t, js, "REDMS_WAL")
	waitStreamHolds(t, js, int(n)+3_000, time.Minute)
	natsProxy.Cut()
	time.Sleep(time.Second)
	natsProxy.Restore()
	l.wait(t, 2*time.Minute)
	want, total := expectedVersions(t, url)
	waitAllSeen(t, js, want, 2*time.Minute).verify(t, want, total)
	for _, w := range []string{"replication session ended, reconnecting", "nats disconnected", "nats reconnected"} {
		if !hasLine(p.Log.String(), w) {
			t.Errorf("capture did not log %q: the cut did not reach it", w)
		}
	}
}

// TestNATSOutageAndFullStream fills a small stream, stops NATS for 30 s, and
// checks that the same capture process rides it out: it keeps running, never
// confirms past what JetStream acknowledged, Postgres keeps the WAL, and once
// NATS is back and space is freed by consuming, every change arrives
// (discard new: nothing already stored is dropped). A second, short outage at
// the end checks that SIGTERM with unacknowledgeable publishes exits within
// the shutdown deadline without confirming anything new.
func TestNATSOutageAndFullStream(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, loadTable)
	env := liveEnv(url, ns.URL(), "full")
	env["REDMS_STREAM_MAX_BYTES"] = strconv.Itoa(1 << 20)
	env["REDMS_BATCH_BYTES"] = strconv.Itoa(16 << 10) // the stream fills to within a batch
	env["REDMS_ACK_TIMEOUT"] = "2s"
	env["REDMS_SHUTDOWN_TIMEOUT"] = "3s"
	p := startCapture(t, env)
	testenv.Eventually(t, 30*time.Second, "slot", func() bool { return slotConfirmed(t, db, "full") != 0 })

	l := startLoad(t, url, 20_000, 100)
	l.wait(t, time.Minute)
	ctx := context.Background()
	st, err := js.Stream(ctx, "REDMS_WAL")
	if err != nil {
		t.Fatal(err)
	}
	// The stream fills up and stays full: capture waits.
	testenv.Eventually(t, time.Minute, "stream full", func() bool {
		info, err := st.Info(ctx)
		return err == nil && info.State.Bytes > (1<<20)-(32<<10)
	})
	checkConfirmedWithinStream := func(when string) {
		t.Helper()
		msgs := readChanges(t, js, "REDMS_WAL")
		var newest pglogrepl.LSN
		for _, m := range msgs {
			if c, err := pglogrepl.ParseLSN(m.Header.Get(walheader.CommitLSN)); err == nil && c > newest {
				newest = c
			}
		}
		if conf := slotConfirmed(t, db, "full"); conf > newest {
			t.Errorf("%s: slot confirmed %s, past the newest commit in the stream %s", when, conf, newest)
		}
		var status string
		if err := db.QueryRow(ctx, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'full'").Scan(&status); err != nil || status == "lost" {
			t.Errorf("%s: slot wal_status %q, %v", when, status, err)
		}
	}
	time.Sleep(2 * time.Second)
	checkConfirmedWithinStream("stream full")
	confirmedFull := slotConfirmed(t, db, "full")

	ns.Stop()
	time.Sleep(30 * time.Second)
	if conf := slotConfirmed(t, db, "full"); conf != confirmedFull {
		t.Errorf("slot confirmed moved from %s to %s while NATS was down", confirmedFull, conf)
	}
	select {
	case <-p.Done():
		t.Fatalf("capture exited during the outage: %v", p.Err())
	default:
	}
	if !hasLine(p.Log.String(), "publish retry") {
		t.Error("capture never retried a publish to the full stream")
	}
	ns.Restart(t)
	_, js = ns.Connect(t)
	checkConfirmedWithinStream("after the outage")

	// Free space by consuming; collect what is consumed.
	want, total := expectedVersions(t, url)
	st, err = js.Stream(ctx, "REDMS_WAL")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "drain", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	s := newSeen()
	deadline := time.Now().Add(2 * time.Minute)
	for len(s.count) < total && time.Now().Before(deadline) {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		for m := range batch.Messages() {
			for _, c := range changes(t, []streamMsg{{Subject: m.Subject(), Header: m.Headers(), Data: string(m.Data())}}) {
				s.add(t, c)
			}
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatalf("ack: %v", err)
			}
		}
	}
	s.verify(t, want, total)
	if t.Failed() {
		return
	}
	// Everything is acked: the slot may now move to the end.
	end := currentLSN(t, db)
	testenv.Eventually(t, 30*time.Second, "slot confirmed at the end", func() bool { return slotConfirmed(t, db, "full") >= end })

	// SIGTERM while NATS is down and a change waits for its PubAck: capture
	// gives up after REDMS_SHUTDOWN_TIMEOUT, does not confirm that change,
	// exits 0. (It may confirm WAL with no change before it: a keepalive's
	// WAL end, once everything handed over was acknowledged.)
	ns.Stop()
	// The test cluster commits asynchronously: commit this one synchronously,
	// so the WAL written after it ends at or past its commit.
	exec1(t, db, "BEGIN; SET LOCAL synchronous_commit = on; INSERT INTO load (id, v, pad) VALUES (-1, 1, 'after'); COMMIT")
	insertEnd := currentLSN(t, db)
	time.Sleep(2 * time.Second)
	stopped := time.Now()
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("capture exit after SIGTERM during the outage: %v", err)
	}
	t.Logf("stopped %s after SIGTERM", time.Since(stopped).Round(time.Millisecond))
	if conf := slotConfirmed(t, db, "full"); conf >= insertEnd {
		t.Errorf("slot confirmed %s at shutdown during the outage, past the change without a PubAck (its commit ends at %s)", conf, insertEnd)
	}
}
