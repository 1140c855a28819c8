package service

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newTestProcess(t *testing.T, s Settings) (*Process, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	p, err := New(Options{Name: "redms-test", Log: &logs}, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, &logs
}

// TestRunStopsEveryLoopOnFirstError: a loop that fails ends the others'
// context, Run returns that error once all have returned.
func TestRunStopsEveryLoopOnFirstError(t *testing.T) {
	p, _ := newTestProcess(t, Settings{ShutdownTimeout: time.Minute})
	boom := errors.New("slot belongs to another database")
	var stopped atomic.Int32
	p.Go("before run", func(ctx context.Context) error {
		<-ctx.Done()
		stopped.Add(1)
		return nil
	})
	err := p.Run(context.Background(), func(ctx context.Context) error {
		p.Go("from main", func(ctx context.Context) error {
			<-ctx.Done()
			stopped.Add(1)
			return nil
		})
		p.Go("failing", func(context.Context) error { return boom })
		return nil // main's nil ends only main
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want %v", err, boom)
	}
	if n := stopped.Load(); n != 2 {
		t.Fatalf("%d loops saw the stop, want 2", n)
	}
}

// TestRunCancelledIsClean: a stop from outside is no error, even when a
// loop returns the context's error.
func TestRunCancelledIsClean(t *testing.T) {
	p, _ := newTestProcess(t, Settings{ShutdownTimeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	err := p.Run(ctx, func(ctx context.Context) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
}

// TestRunGivesUpOnStuckLoop: a loop that ignores the stop does not keep
// the process alive past the shutdown timeout and grace; the error names it.
func TestRunGivesUpOnStuckLoop(t *testing.T) {
	p, _ := newTestProcess(t, Settings{ShutdownTimeout: 10 * time.Millisecond})
	p.grace = 10 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := p.Run(ctx, func(context.Context) error {
		<-release
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "[main] still running") {
		t.Fatalf("Run = %v, want an error naming the stuck loop main", err)
	}
}

// TestNewLogsJSONWithService: every line carries the binary's name.
func TestNewLogsJSONWithService(t *testing.T) {
	p, logs := newTestProcess(t, Settings{LogLevel: "info"})
	p.Log.Info("started", "table", "public.t")
	if got := logs.String(); !strings.Contains(got, `"service":"redms-test"`) || !strings.Contains(got, `"table":"public.t"`) {
		t.Fatalf("log line %q", got)
	}
	if _, err := New(Options{Name: "x", Log: logs}, Settings{LogLevel: "loud"}); err == nil || !strings.Contains(err.Error(), "log level") {
		t.Fatalf("New with a bad level = %v", err)
	}
}
