package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/proc"
	"github.com/redms/redms/pkg/testinfra/scrape"
	"github.com/redms/redms/pkg/testinfra/testenv"
)

// service is one service process that the test starts, kills and restarts.
// Every incarnation appends to the same log file.
type service struct {
	name        string
	bin         string
	args        []string
	env         []string // the whole environment (stackenv)
	logPath     string
	metricsAddr string

	mu     sync.Mutex
	p      *proc.Process          // the current incarnation
	ended  chan struct{}          // closed once its exit is recorded
	caused map[*proc.Process]bool // incarnations the test killed or stopped
	starts int
	exits  []string // unexpected exits, for the report

	// beforeRecord, when set, runs before an exit is recorded (a test
	// delays the recorder with it).
	beforeRecord func()
}

func (s *service) start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil && s.p.Running() {
		t.Fatalf("start %s: already running", s.name)
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("open log of %s: %v", s.name, err)
	}
	s.starts++
	fmt.Fprintf(logf, "=== e2e: start %d of %s at %s\n", s.starts, s.name, time.Now().UTC().Format(time.RFC3339Nano))
	p, err := proc.Start(proc.Options{Name: s.name, Path: s.bin, Args: s.args, Env: s.env, Stdout: logf, Stderr: logf})
	if err != nil {
		logf.Close()
		t.Fatalf("%v", err)
	}
	ended := make(chan struct{})
	s.p, s.ended = p, ended
	before := s.beforeRecord
	go func() {
		<-p.Done()
		if before != nil {
			before()
		}
		s.mu.Lock()
		// Per incarnation: a kill followed at once by a start must not let
		// the new incarnation's start un-mark the killed one.
		if !s.caused[p] {
			s.exits = append(s.exits, fmt.Sprintf("%s (pid %d) exited by itself: %v (code %d)", s.name, p.PID(), p.Err(), p.ExitCode()))
		}
		s.mu.Unlock()
		fmt.Fprintf(logf, "=== e2e: %s pid %d ended: %v\n", s.name, p.PID(), p.Err())
		logf.Close()
		close(ended)
	}()
}

// current is the current incarnation, nil before the first start.
func (s *service) current() *proc.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// replica is the replica id of the current loader incarnation (see
// stack.startLoader).
func (s *service) replica() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%s-%d", s.name, s.starts)
}

func (s *service) pid() int {
	if p := s.current(); p != nil {
		return p.PID()
	}
	return 0
}

func (s *service) running() bool {
	p := s.current()
	return p != nil && p.Running()
}

// signal sends sig to the running incarnation and waits up to wait for it
// to end; then it is killed.
func (s *service) signal(t testing.TB, sig syscall.Signal, wait time.Duration) {
	t.Helper()
	s.mu.Lock()
	p := s.p
	if p == nil || !p.Running() {
		s.mu.Unlock()
		return
	}
	if s.caused == nil {
		s.caused = map[*proc.Process]bool{}
	}
	s.caused[p] = true
	s.mu.Unlock()
	if err := p.Signal(sig); err != nil {
		t.Errorf("%v", err)
	}
	if !p.Wait(wait) {
		t.Errorf("%s (pid %d) did not end %s after %v; killing it", s.name, p.PID(), wait, sig)
		p.Kill()
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *service) kill(t testing.TB) { s.signal(t, syscall.SIGKILL, 10*time.Second) }

// stop sends SIGTERM and waits for a clean exit.
func (s *service) stop(t testing.TB) { s.signal(t, syscall.SIGTERM, 30*time.Second) }

// waitExit waits for the process to end by itself (and its exit to be
// recorded, so forgiveExit can take it back) and returns its exit code
// (128+signal when killed by a signal).
func (s *service) waitExit(ctx context.Context) (int, error) {
	s.mu.Lock()
	p, ended := s.p, s.ended
	s.mu.Unlock()
	select {
	case <-ended:
		return p.ExitCode(), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (s *service) lastExitCode() int { return s.current().ExitCode() }

// unexpected returns the exits the test did not cause.
func (s *service) unexpected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.exits...)
}

// forgiveExit marks the last exit as caused by the test (a crash hook the
// test asked for).
func (s *service) forgiveExit() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.exits) > 0 {
		s.exits = s.exits[:len(s.exits)-1]
	}
}

// waitReady waits until /readyz answers 200.
func (s *service) waitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	testenv.WaitReady(t, s.current(), s.metricsAddr, timeout, func() string { return proc.ReadFile(s.logPath) })
}

// tail is the last n lines of the process's log.
func (s *service) tail(n int) string {
	return "    " + strings.ReplaceAll(proc.Tail(proc.ReadFile(s.logPath), n), "\n", "\n    ")
}

// grep returns the log lines containing any of the words, at most n.
func (s *service) grep(n int, words ...string) []string {
	return proc.Grep(proc.ReadFile(s.logPath), n, words...)
}

// metrics scrapes /metrics.
func (s *service) metrics() (scrape.Samples, error) { return testenv.Scrape(s.metricsAddr) }

// TestKillThenStartIsNoCrash: the exit of a killed incarnation is recorded
// by a goroutine that may run only after the next incarnation started; that
// start must not make the killed one look like a crash.
func TestKillThenStartIsNoCrash(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("sleep(1) is needed for this test: %v", err)
	}
	s := &service{name: "sleeper", bin: sleep, args: []string{"30"}, env: os.Environ(), logPath: filepath.Join(t.TempDir(), "sleeper.log")}
	restarted := make(chan struct{})
	s.beforeRecord = func() { <-restarted }
	s.start(t)
	firstEnded := s.ended
	s.kill(t) // returns once the process is gone; its exit is not recorded yet
	s.beforeRecord = nil
	s.start(t)
	close(restarted)
	<-firstEnded
	s.stop(t)
	<-s.ended
	if u := s.unexpected(); len(u) > 0 {
		t.Fatalf("an incarnation killed by the test was reported as a crash: %s", u[0])
	}
}
