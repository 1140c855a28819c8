package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// child is one service process (capture, a loader, rsemu) that devstack
// owns. It dies with devstack: Pdeathsig=SIGKILL is armed on the thread
// that starts it, and that thread stays locked until the process has exited
// (Linux sends the signal when the starting thread, not the process, exits).
type child struct {
	name    string
	path    string
	args    []string
	env     []string
	logPath string

	pid    int
	exited chan struct{} // closed once the process has exited
	err    error         // Wait's result, read after exited is closed
}

// start starts the process with stdout and stderr appended to logPath.
func (c *child) start() error {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", c.name, err)
	}
	started := make(chan error, 1)
	c.exited = make(chan struct{})
	go func() {
		defer logf.Close()
		runtime.LockOSThread()
		// The thread stays locked for the process's lifetime and is released
		// (not destroyed) after Wait, so Pdeathsig fires only if devstack dies.
		defer runtime.UnlockOSThread()
		cmd := exec.Command(c.path, c.args...)
		cmd.Env = c.env
		cmd.Stdout = logf
		cmd.Stderr = logf
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Pdeathsig: syscall.SIGKILL,
			// Its own process group: a terminal's Ctrl-C reaches devstack
			// only, which then stops the children in order.
			Setpgid: true,
		}
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("start %s (%s): %w", c.name, c.path, err)
			close(c.exited)
			return
		}
		c.pid = cmd.Process.Pid
		started <- nil
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return <-started
}

// running reports whether the process has not exited.
func (c *child) running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits up to grace, then SIGKILLs and waits.
func (c *child) stop(grace time.Duration) error {
	if c.exited == nil || !c.running() {
		return nil
	}
	_ = syscall.Kill(c.pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.exited:
		return nil
	case <-t.C:
	}
	_ = syscall.Kill(c.pid, syscall.SIGKILL)
	<-c.exited
	return fmt.Errorf("stop %s: no exit %s after SIGTERM, killed", c.name, grace)
}

// errExited says a child ended while devstack still needed it.
var errExited = errors.New("exited")

// watch returns when ctx ends or the process exits; in the latter case it
// returns an error naming the process and its log.
func (c *child) watch(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-c.exited:
		return fmt.Errorf("%s %w (%v); see %s", c.name, errExited, c.err, c.logPath)
	}
}
