// Package proc runs a service binary as a child process the way tests and
// redms-devstack need it: output into a locked, tee-able Log (or a file),
// SIGTERM then SIGKILL with a deadline, SIGKILL, SIGSTOP/SIGCONT for the
// fault tests, the exit status, and waiting for /readyz. It has no testing
// import (devstack uses it); testenv adapts it to testing.TB.
package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Options say what to run.
type Options struct {
	// Name is how errors and logs call the process (redms-loader-1).
	Name string
	Path string
	Args []string
	// Env is the whole environment (see stackenv.Base); later entries of a
	// key win.
	Env []string
	// Stdout and Stderr receive the output; nil discards it. The same
	// writer may be given for both.
	Stdout, Stderr io.Writer
	// DieWithParent kills the process when this one dies (Pdeathsig, armed
	// on an OS thread that stays locked while the child runs) and gives it
	// its own process group, so a terminal's Ctrl-C reaches the parent only.
	DieWithParent bool
}

// Process is a started child. Its methods are safe for concurrent use.
type Process struct {
	name string
	pid  int
	done chan struct{} // closed once the process has exited

	mu     sync.Mutex
	err    error     // Wait's result, once done
	exited *exec.Cmd // the command, once it has exited
}

// Start starts the process.
func Start(o Options) (*Process, error) {
	p := &Process{name: o.Name, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		if o.DieWithParent {
			// Linux sends Pdeathsig when the thread that started the child
			// exits, so the thread stays locked until the child has exited
			// (and is released, not destroyed, afterwards).
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
		}
		cmd := exec.Command(o.Path, o.Args...)
		cmd.Env = o.Env
		cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
		if o.DieWithParent {
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		}
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("start %s (%s): %w", o.Name, o.Path, err)
			close(p.done)
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		err := cmd.Wait()
		p.mu.Lock()
		p.err, p.exited = err, cmd
		p.mu.Unlock()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Name is Options.Name.
func (p *Process) Name() string { return p.name }

// PID is the process id.
func (p *Process) PID() int { return p.pid }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Err is the exit error (nil for exit code 0) once the process has exited.
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// ExitCode is the exit code once the process has exited, 128+n when signal
// n killed it, -1 while it runs.
func (p *Process) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited == nil {
		return -1
	}
	ps := p.exited.ProcessState
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// Signal sends sig unless the process has exited.
func (p *Process) Signal(sig syscall.Signal) error {
	if !p.Running() {
		return nil
	}
	if err := syscall.Kill(p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s (pid %d) %v: %w", p.name, p.pid, sig, err)
	}
	return nil
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Process) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
}

// Pause stops the process (SIGSTOP) until Resume.
func (p *Process) Pause() error { return p.Signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *Process) Resume() error { return p.Signal(syscall.SIGCONT) }

// ErrKilled says Stop had to kill a process that did not exit in time.
var ErrKilled = errors.New("no exit after SIGTERM, killed")

// Stop sends SIGTERM and waits up to grace for the exit, then sends SIGKILL
// and returns ErrKilled. Otherwise it returns the exit error (nil for exit
// code 0, also when the process had exited before).
func (p *Process) Stop(grace time.Duration) error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	if !p.Wait(grace) {
		p.Kill()
		return fmt.Errorf("stop %s: %w within %s", p.name, ErrKilled, grace)
	}
	return p.Err()
}

// Wait waits up to d for the process to exit and reports whether it has.
func (p *Process) Wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// ErrExited says the process ended while it was waited for.
var ErrExited = errors.New("exited")

// WaitReady polls url (a /readyz) every 100 ms until it answers 200, and
// fails when the process exits first or ctx ends, with the last answer.
func (p *Process) WaitReady(ctx context.Context, url string) error {
	return p.WaitFor(ctx, func(ctx context.Context) error { return Ready(ctx, url) })
}

// WaitFor calls check every 100 ms until it returns nil, and fails when the
// process exits first or ctx ends, with check's last error.
func (p *Process) WaitFor(ctx context.Context, check func(context.Context) error) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s %w before it was ready (%v); last check: %v", p.name, ErrExited, p.Err(), err)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w; last check: %v", p.name, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// readyClient bounds one readiness request.
var readyClient = &http.Client{Timeout: 2 * time.Second}

// Ready is nil when GET url answers 200.
func Ready(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := readyClient.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, body)
	}
	return nil
}
