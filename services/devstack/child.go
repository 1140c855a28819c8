package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/redms/redms/pkg/testinfra/proc"
)

// child is one service process (capture, a loader, rsemu) that devstack
// owns, its output appended to logPath. It dies with devstack
// (proc.Options.DieWithParent).
type child struct {
	name    string
	path    string
	args    []string
	env     []string
	logPath string

	p *proc.Process
}

// start starts the process.
func (c *child) start() error {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", c.name, err)
	}
	// The child writes to its own copy of the file.
	defer logf.Close()
	c.p, err = proc.Start(proc.Options{Name: c.name, Path: c.path, Args: c.args, Env: c.env, Stdout: logf, Stderr: logf, DieWithParent: true})
	return err
}

// stop sends SIGTERM and waits up to grace, then SIGKILLs and waits; only
// the kill is an error.
func (c *child) stop(grace time.Duration) error {
	if c.p == nil {
		return nil
	}
	if err := c.p.Stop(grace); errors.Is(err, proc.ErrKilled) {
		return err
	}
	return nil
}

// errExited says a child ended while devstack still needed it.
var errExited = errors.New("exited")

// watch returns when ctx ends or the process exits; in the latter case it
// returns an error naming the process and its log.
func (c *child) watch(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-c.p.Done():
		return fmt.Errorf("%s %w (%v); see %s", c.name, errExited, c.p.Err(), c.logPath)
	}
}

// waitReady polls url (a /readyz) until it answers 200, the child exits or
// timeout passes.
func waitReady(ctx context.Context, c *child, url string, timeout time.Duration) error {
	return waitFor(ctx, c, timeout, func(ctx context.Context) error { return proc.Ready(ctx, url) })
}

// waitFor retries check until it succeeds, c exits, ctx ends or timeout
// passes; the error then points at c's log.
func waitFor(ctx context.Context, c *child, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.p.WaitFor(ctx, check); err != nil {
		return fmt.Errorf("%w; see %s:\n%s", err, c.logPath, proc.Tail(proc.ReadFile(c.logPath), 15))
	}
	return nil
}
