package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// captureBin is the redms-capture binary built once for the tests, with the
// race detector when the tests run with it; plainBin is built without it
// for the 100k-change load (under -race it would dominate the suite's time).
var captureBin, plainBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "redms-capture-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	captureBin = filepath.Join(dir, "redms-capture")
	plainBin = captureBin
	if raceEnabled {
		plainBin = filepath.Join(dir, "redms-capture-norace")
		if err := goBuild(plainBin); err != nil {
			fmt.Fprintln(os.Stderr, "build redms-capture:", err)
			return 1
		}
	}
	if err := goBuild(captureBin, flagIf(raceEnabled, "-race")...); err != nil {
		fmt.Fprintln(os.Stderr, "build redms-capture:", err)
		return 1
	}
	return m.Run()
}

func flagIf(ok bool, flag string) []string {
	if ok {
		return []string{flag}
	}
	return nil
}

func goBuild(out string, flags ...string) error {
	args := append([]string{"build", "-o", out}, flags...)
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	return build.Run()
}

// syncBuffer is a bytes.Buffer safe for a process writer and a test reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// captureProc is a running redms-capture.
type captureProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// startCapture runs the binary with env (REDMS_* values) and args.
func startCapture(t testing.TB, env map[string]string, args ...string) *captureProc {
	t.Helper()
	return startBinary(t, captureBin, env, args...)
}

// startBinary runs bin (captureBin or plainBin) like startCapture.
func startBinary(t testing.TB, bin string, env map[string]string, args ...string) *captureProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "REDMS_METRICS_ADDR=", "REDMS_LOG_LEVEL=info")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &captureProc{t: t, cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redms-capture: %v", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("redms-capture pid %d stderr:\n%s", cmd.Process.Pid, tail(p.stderr.String(), 8000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// kill sends SIGKILL and waits.
func (p *captureProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for the exit status.
func (p *captureProc) stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.t.Errorf("redms-capture did not stop within %s of SIGTERM", timeout)
		p.kill()
		return p.err
	}
}

// wait waits for the process to exit by itself.
func (p *captureProc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.t.Fatalf("redms-capture still running after %s", timeout)
		return nil
	}
}

func liveEnv(pgURL, natsURL, slot string) map[string]string {
	return map[string]string{
		"REDMS_SOURCE_URL":       pgURL,
		"REDMS_NATS_URL":         natsURL,
		"REDMS_SLOT":             slot,
		"REDMS_SHUTDOWN_TIMEOUT": "10s",
		"REDMS_CONFIRM_EVERY":    "100ms",
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

// eventually polls cond until it is true or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
