package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is one service process that the test starts, kills and restarts.
// Every incarnation appends to the same log file.
type proc struct {
	name        string
	bin         string
	args        []string
	env         []string
	logPath     string
	metricsAddr string

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	state    *os.ProcessState
	killed   bool // the test killed or stopped the current incarnation
	starts   int
	exits    []string // unexpected exits, for the report
	exitCode int
}

// baseEnv is the test's environment without REDMS_ and AWS_ settings, so a
// developer's shell cannot change what the services see.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REDMS_") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (p *proc) start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.state == nil {
		t.Fatalf("start %s: already running", p.name)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("open log of %s: %v", p.name, err)
	}
	p.starts++
	fmt.Fprintf(logf, "=== e2e: start %d of %s at %s\n", p.starts, p.name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(baseEnv(), p.env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd, p.state, p.killed = cmd, nil, false
	done := make(chan struct{})
	p.done = done
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.state = cmd.ProcessState
		code := cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		p.exitCode = code
		if !p.killed {
			p.exits = append(p.exits, fmt.Sprintf("%s (pid %d) exited by itself: %v (code %d)", p.name, cmd.Process.Pid, err, code))
		}
		fmt.Fprintf(logf, "=== e2e: %s pid %d ended: %v\n", p.name, cmd.Process.Pid, err)
		p.mu.Unlock()
		logf.Close()
		close(done)
	}()
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && p.state == nil
}

// signal sends sig to the running incarnation and waits up to wait for it
// to end; then it is killed.
func (p *proc) signal(t testing.TB, sig syscall.Signal, wait time.Duration) {
	t.Helper()
	p.mu.Lock()
	if p.cmd == nil || p.state != nil {
		p.mu.Unlock()
		return
	}
	p.killed = true
	proc, done := p.cmd.Process, p.done
	p.mu.Unlock()
	if err := proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signal %s: %v", p.name, err)
	}
	select {
	case <-done:
	case <-time.After(wait):
		t.Errorf("%s (pid %d) did not end %s after %v; killing it", p.name, proc.Pid, wait, sig)
		_ = proc.Kill()
		<-done
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill(t testing.TB) { p.signal(t, syscall.SIGKILL, 10*time.Second) }

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t testing.TB) { p.signal(t, syscall.SIGTERM, 30*time.Second) }

// waitExit waits for the process to end by itself and returns its exit
// code (128+signal when killed by a signal).
func (p *proc) waitExit(ctx context.Context) (int, error) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.exitCode, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (p *proc) lastExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitCode
}

// unexpected returns the exits the test did not cause.
func (p *proc) unexpected() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.exits...)
}

// forgiveExit marks the last exit as caused by the test (a crash hook the
// test asked for).
func (p *proc) forgiveExit() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.exits) > 0 {
		p.exits = p.exits[:len(p.exits)-1]
	}
}

// waitReady polls /readyz until it answers 200.
func (p *proc) waitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	url := "http://" + p.metricsAddr + "/readyz"
	var last string
	for time.Now().Before(deadline) {
		if !p.running() {
			t.Fatalf("%s exited before it was ready:\n%s", p.name, p.tail(40))
		}
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %v (GET %s: %s):\n%s", p.name, timeout, url, last, p.tail(40))
}

// tail is the last n lines of the process's log.
func (p *proc) tail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 600 {
			lines[i] = l[:600] + "…"
		}
	}
	return "    " + strings.Join(lines, "\n    ")
}

// grep returns the log lines containing any of the words, at most n.
func (p *proc) grep(n int, words ...string) []string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() && len(out) < n {
		l := sc.Text()
		for _, w := range words {
			if strings.Contains(l, w) {
				if len(l) > 600 {
					l = l[:600] + "…"
				}
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// metrics scrapes /metrics into "name{labels}" → value.
func (p *proc) metrics() (map[string]float64, error) {
	resp, err := http.Get("http://" + p.metricsAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			continue
		}
		out[l[:i]] = v
	}
	return out, sc.Err()
}
