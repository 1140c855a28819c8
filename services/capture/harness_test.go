package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/testinfra/proc"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
)

// captureBin is the redms-capture binary built once for the tests, with the
// race detector when the tests run with it; plainBin is the binary built
// without it, for the 100k-change load (under -race it would dominate the
// suite's time): captureBin itself without -race.
var (
	captureBin, noraceBin string
	plainBin              = &captureBin
)

func TestMain(m *testing.M) {
	bins := []testenv.Binary{{Name: "redms-capture", Dir: ".", Path: &captureBin}}
	if raceEnabled {
		bins[0].Flags = []string{"-race"}
		bins = append(bins, testenv.Binary{Name: "redms-capture-norace", Dir: ".", Path: &noraceBin})
		plainBin = &noraceBin
	}
	os.Exit(testenv.RunWithBinaries(m, bins...))
}

// captureProc is a running redms-capture: its log is standard error, its
// standard output (--dry-run's JSON) is apart.
type captureProc struct {
	*testenv.Process
	stdout *proc.Log
}

// startCapture runs the binary with env (REDMS_* values) and args.
func startCapture(t testing.TB, env map[string]string, args ...string) *captureProc {
	t.Helper()
	return startBinary(t, captureBin, env, args...)
}

// startBinary runs bin (captureBin or plainBin) like startCapture.
func startBinary(t testing.TB, bin string, env map[string]string, args ...string) *captureProc {
	t.Helper()
	vars := append(os.Environ(), "REDMS_METRICS_ADDR=", "REDMS_LOG_LEVEL=info")
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	stdout := &proc.Log{}
	p := testenv.StartProcess(t, proc.Options{Name: "redms-capture", Path: bin, Args: args, Env: vars, Stdout: stdout})
	return &captureProc{Process: p, stdout: stdout}
}

func liveEnv(pgURL, natsURL, slot string) map[string]string {
	return map[string]string{
		"REDMS_SOURCE_URL":       pgURL,
		"REDMS_NATS_URL":         natsURL,
		"REDMS_SLOT":             slot,
		"REDMS_SHUTDOWN_TIMEOUT": "10s",
		"REDMS_CONFIRM_EVERY":    "100ms",
		// These tests count the live stream's messages; tables they
		// create before capture starts would be snapshotted (e2e tests
		// snapshots).
		"REDMS_SNAPSHOT": "never",
	}
}

// connect opens a pgx connection closed at the end of the test.
func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func exec1(t testing.TB, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// slotConfirmed returns the slot's confirmed_flush_lsn (0 when no slot).
func slotConfirmed(t testing.TB, c *pgx.Conn, slot string) pglogrepl.LSN {
	t.Helper()
	var s *string
	err := c.QueryRow(context.Background(), "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&s)
	if err == pgx.ErrNoRows || s == nil {
		return 0
	}
	if err != nil {
		t.Fatalf("read slot: %v", err)
	}
	l, err := pglogrepl.ParseLSN(*s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func currentLSN(t testing.TB, c *pgx.Conn) pglogrepl.LSN {
	t.Helper()
	var s string
	if err := c.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&s); err != nil {
		t.Fatal(err)
	}
	l, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func streamCount(t testing.TB, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// streamMsg is one stored message.
type streamMsg struct {
	Subject string
	Header  nats.Header
	Data    string
	Seq     uint64
}

// readStream reads every message in the stream without acknowledging any
// (a pull consumer with a long ack wait, deleted afterwards).
func readStream(t testing.TB, js jetstream.JetStream, name string) []streamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := info.State.Msgs
	cname := fmt.Sprintf("reader-%d", time.Now().UnixNano())
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Name: cname, AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Hour, MaxAckPending: -1})
	if err != nil {
		t.Fatalf("create reader consumer: %v", err)
	}
	defer s.DeleteConsumer(context.Background(), cname)
	var out []streamMsg
	for uint64(len(out)) < want {
		batch, err := cons.FetchNoWait(5000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			md, _ := m.Metadata()
			out = append(out, streamMsg{Subject: m.Subject(), Header: m.Headers(), Data: string(m.Data()), Seq: md.Sequence.Stream})
			n++
		}
		if n == 0 {
			if ctx.Err() != nil {
				t.Fatalf("read %d of %d messages", len(out), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return out
}

// changes returns the change records of msgs in stream order: every
// record of a batch as a streamMsg of its own, its headers its message's
// as they apply to it (its position, LSN and transaction; prev = the
// record before it on the subject, the message's prev for the first);
// messages of one change and parts as they are. Every batch must parse
// (walheader.Parse, SplitBody) and every record with testdecoding.Parse.
func changes(t testing.TB, msgs []streamMsg) []streamMsg {
	t.Helper()
	var out []streamMsg
	for i, m := range msgs {
		meta, err := walheader.Parse(m.Header)
		if err != nil {
			t.Fatalf("message %d (%s seq %d): %v", i, m.Subject, m.Seq, err)
		}
		if meta.Runs == nil {
			if meta.Parts == 0 {
				if _, err := testdecoding.Parse([]byte(m.Data)); err != nil {
					t.Errorf("message %d (%s seq %d) %.60q: %v", i, m.Subject, m.Seq, m.Data, err)
				}
			}
			out = append(out, m)
			continue
		}
		recs, err := walheader.SplitBody([]byte(m.Data), meta.Lens)
		if err != nil {
			t.Fatalf("message %d (%s seq %d): %v", i, m.Subject, m.Seq, err)
		}
		pos := walheader.Positions(meta.Runs)
		k := 0
		for _, r := range meta.Runs {
			for range r.Count {
				if _, err := testdecoding.Parse(recs[k]); err != nil {
					t.Errorf("message %d (%s seq %d) record %d %.60q: %v", i, m.Subject, m.Seq, k, recs[k], err)
				}
				h := nats.Header{}
				for name, v := range m.Header {
					switch name {
					case walheader.Lens, walheader.Txns, walheader.LSNDeltas, walheader.LastPos, walheader.CommitLSN, walheader.CommitTime, walheader.PrevPos:
					default:
						h[name] = v
					}
				}
				h.Set(walheader.FirstPos, pos[k].String())
				h.Set(walheader.LSN, pglogrepl.LSN(meta.LSNs[k]).String())
				h.Set(walheader.Xid, strconv.FormatUint(r.Xid, 10))
				if r.CommitLSN != "" {
					h.Set(walheader.CommitLSN, r.CommitLSN)
					h.Set(walheader.CommitTime, r.CommitTime.Format(walheader.TimeLayout))
				}
				switch {
				case k > 0:
					h.Set(walheader.PrevPos, pos[k-1].String())
				case meta.HasPrev:
					h.Set(walheader.PrevPos, meta.Prev.String())
				}
				out = append(out, streamMsg{Subject: m.Subject, Header: h, Data: string(recs[k]), Seq: m.Seq})
				k++
			}
		}
	}
	return out
}

// readChanges is changes(readStream(…)).
func readChanges(t testing.TB, js jetstream.JetStream, name string) []streamMsg {
	t.Helper()
	return changes(t, readStream(t, js, name))
}

// streamChanges counts the change records in the stream (a part counts as
// one) by reading every message's headers.
func streamChanges(t testing.TB, js jetstream.JetStream, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return 0
	}
	cname := fmt.Sprintf("counter-%d", time.Now().UnixNano())
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Name: cname, AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Hour, MaxAckPending: -1, HeadersOnly: true})
	if err != nil {
		t.Fatalf("create counting consumer: %v", err)
	}
	defer s.DeleteConsumer(context.Background(), cname)
	n, seen := 0, uint64(0)
	for seen < info.State.Msgs {
		batch, err := cons.FetchNoWait(5000)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			if lens := m.Headers().Get(walheader.Lens); lens != "" {
				n += strings.Count(lens, ",") + 1
			} else {
				n++
			}
		}
		if got == 0 {
			break // removed meanwhile (a consumer acked them)
		}
		seen += uint64(got)
	}
	return n
}

// waitStreamHolds waits until the stream holds at least n change records.
func waitStreamHolds(t testing.TB, js jetstream.JetStream, n int, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, fmt.Sprintf("%d changes in the stream", n), func() bool { return streamChanges(t, js, "REDMS_WAL") >= n })
}

func hasLine(s, sub string) bool { return strings.Contains(s, sub) }

func httpGet(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
