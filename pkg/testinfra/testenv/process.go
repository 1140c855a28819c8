package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/proc"
	"github.com/redms/redms/pkg/testinfra/scrape"
)

// Process is a service binary the test runs (see package proc), with its
// output in Log.
type Process struct {
	*proc.Process
	t testing.TB
	// Log holds standard error, and standard output unless o.Stdout was
	// given to StartProcess.
	Log *proc.Log
}

// StartProcess starts o. Output StartProcess is not given a writer for goes
// to Log. The process is killed when the test ends; when the test failed,
// the end of its log is logged.
func StartProcess(t testing.TB, o proc.Options) *Process {
	t.Helper()
	p := &Process{t: t, Log: &proc.Log{}}
	if o.Stdout == nil {
		o.Stdout = p.Log
	}
	if o.Stderr == nil {
		o.Stderr = p.Log
	}
	var err error
	if p.Process, err = proc.Start(o); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s (pid %d) log:\n%s", o.Name, p.PID(), proc.Tail(p.Log.String(), 80))
		}
	})
	return p
}

// Stop sends SIGTERM and returns the exit error (nil for exit code 0); a
// process still running after timeout fails the test and is killed.
func (p *Process) Stop(timeout time.Duration) error {
	p.t.Helper()
	err := p.Process.Stop(timeout)
	if errors.Is(err, proc.ErrKilled) {
		p.t.Errorf("%v", err)
	}
	return err
}

// WaitExit waits for the process to exit by itself and returns its exit
// error; still running after timeout fails the test.
func (p *Process) WaitExit(timeout time.Duration) error {
	p.t.Helper()
	if !p.Wait(timeout) {
		p.t.Fatalf("%s still running after %s", p.Name(), timeout)
	}
	return p.Err()
}

// WaitReady waits until http://addr/readyz answers 200; the process exiting
// first or timeout passing fails the test with the end of the log.
func (p *Process) WaitReady(addr string, timeout time.Duration) {
	p.t.Helper()
	WaitReady(p.t, p.Process, addr, timeout, func() string { return p.Log.String() })
}

// WaitReady waits until http://addr/readyz of p answers 200; p exiting
// first or timeout passing fails the test with the end of log().
func WaitReady(t testing.TB, p *proc.Process, addr string, timeout time.Duration, log func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := p.WaitReady(ctx, "http://"+addr+"/readyz"); err != nil {
		t.Fatalf("%v:\n%s", err, proc.Tail(log(), 40))
	}
}

// Scrape reads http://addr/metrics.
func Scrape(addr string) (scrape.Samples, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return scrape.Get(ctx, http.DefaultClient, "http://"+addr+"/metrics")
}

// Eventually polls cond, every millisecond at first and less often later
// (up to every 100 ms), until it holds; after timeout it fails the test
// naming what it waited for.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(wait)
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// Build builds the main package in dir into out with go build and flags
// (such as -race), GOWORK=off. It is for TestMain, so it returns an error
// with the compiler's output rather than failing a test.
func Build(dir, out string, flags ...string) error {
	args := append(append([]string{"build", "-o", out}, flags...), ".")
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build in %s (needs the go tool on PATH): %w\n%s", dir, err, strings.TrimSpace(string(output)))
	}
	return nil
}

// Binary is one binary a test binary builds once.
type Binary struct {
	Name  string // the file name, redms-capture
	Dir   string // the main package
	Flags []string
	// Path is set to where the binary was built.
	Path *string
}

// RunWithBinaries is a TestMain: it builds bins into a temp dir, runs m and
// removes the dir. A binary that does not build ends the run (exit 1) with
// the compiler's output.
func RunWithBinaries(m *testing.M, bins ...Binary) int {
	dir, err := os.MkdirTemp("", "redms-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "make binary dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	for _, b := range bins {
		out := filepath.Join(dir, b.Name)
		if err := Build(b.Dir, out, b.Flags...); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n", b.Name, err)
			return 1
		}
		*b.Path = out
	}
	return m.Run()
}

// ServiceDir is services/<name> of the repository the working directory is
// in.
func ServiceDir(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if fi, err := os.Stat(filepath.Join(dir, "services", name)); err == nil && fi.IsDir() {
			return filepath.Join(dir, "services", name), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find repository root: no services/%s above the working directory", name)
		}
		dir = parent
	}
}
