package service

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffDoublesToMax(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next())
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); d != 100*time.Millisecond {
		t.Fatalf("after Reset: %v, want 100ms", d)
	}
}

func TestRetryUntilSuccess(t *testing.T) {
	calls := 0
	var waits []time.Duration
	err := Retry(context.Background(), Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond}, func(context.Context) error {
		calls++
		if calls < 4 {
			return errors.New("not yet")
		}
		return nil
	}, func(err error, wait time.Duration) { waits = append(waits, wait) })
	if err != nil || calls != 4 {
		t.Fatalf("Retry = %v after %d calls, want nil after 4", err, calls)
	}
	if len(waits) != 3 || waits[0] != time.Millisecond || waits[2] != 2*time.Millisecond {
		t.Fatalf("waits %v, want 1ms 2ms 2ms", waits)
	}
}

func TestRetryStopsOnPermanent(t *testing.T) {
	bad := errors.New("stream config differs")
	calls := 0
	err := Retry(context.Background(), Backoff{Min: time.Millisecond, Max: time.Millisecond}, func(context.Context) error {
		calls++
		return Permanent(bad)
	}, nil)
	if err != bad || calls != 1 {
		t.Fatalf("Retry = %v after %d calls, want the permanent error itself after 1", err, calls)
	}
}

func TestRetryHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	last := errors.New("connection refused")
	calls := 0
	err := Retry(ctx, Backoff{Min: time.Hour, Max: time.Hour}, func(context.Context) error {
		calls++
		return last
	}, func(error, time.Duration) { cancel() })
	if !errors.Is(err, context.Canceled) || !errors.Is(err, last) || calls != 1 {
		t.Fatalf("Retry = %v after %d calls, want context.Canceled wrapping the last error after 1 (not an hour's wait)", err, calls)
	}
}

// TestBoundedAttemptsEndAndRetry: an attempt that would wait for ever (a
// request lost while a cluster settles) ends at its bound and the next
// one runs, within the caller's context.
func TestBoundedAttemptsEndAndRetry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls := 0
	err := Retry(ctx, Backoff{Min: time.Millisecond, Max: time.Millisecond}, Bounded(20*time.Millisecond, func(ctx context.Context) error {
		calls++
		if calls < 3 {
			<-ctx.Done() // a request nobody answers
			return ctx.Err()
		}
		return nil
	}), nil)
	if err != nil || calls != 3 {
		t.Fatalf("Retry = %v after %d calls, want nil after 3 (each unanswered call ended by its bound)", err, calls)
	}
	if ctx.Err() != nil {
		t.Fatalf("the caller's context ended: %v", ctx.Err())
	}
}
