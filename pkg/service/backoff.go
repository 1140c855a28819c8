package service

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Backoff is a capped exponential wait: Min first, doubled after every
// wait up to Max. The zero value does not wait. It is not safe for
// concurrent use; each retrying loop keeps its own.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

// Next returns the wait before the next attempt and doubles the one after.
func (b *Backoff) Next() time.Duration {
	if b.next == 0 {
		b.next = b.Min
	}
	d := b.next
	b.next = min(2*b.next, b.Max)
	return d
}

// Reset starts again from Min (after an attempt that went well for long).
func (b *Backoff) Reset() { b.next = 0 }

// Wait sleeps Next(), or returns ctx.Err() as soon as ctx ends.
func (b *Backoff) Wait(ctx context.Context) error { return Sleep(ctx, b.Next()) }

// Sleep waits d, or returns ctx.Err() as soon as ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Retry calls attempt until it returns nil, returns an error made with
// Permanent (Retry then returns what Permanent wrapped), or ctx ends (Retry
// then returns ctx's error with the last attempt's). Between attempts it
// calls onRetry, when not nil, with the error and the wait, then waits b.
func Retry(ctx context.Context, b Backoff, attempt func(context.Context) error, onRetry func(err error, wait time.Duration)) error {
	for {
		err := attempt(ctx)
		if err == nil {
			return nil
		}
		var p *permanentError
		if errors.As(err, &p) {
			return p.err
		}
		if ctx.Err() == nil {
			wait := b.Next()
			if onRetry != nil {
				onRetry(err, wait)
			}
			if Sleep(ctx, wait) == nil {
				continue
			}
		}
		return fmt.Errorf("%w (last attempt: %w)", ctx.Err(), err)
	}
}

// Bounded returns attempt with each call bounded by d, for Retry: a
// request lost while a cluster settles is answered by the next attempt
// instead of holding the whole of ctx.
func Bounded(d time.Duration, attempt func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return attempt(ctx)
	}
}

// Permanent marks an error Retry must not retry.
func Permanent(err error) error { return &permanentError{err: err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }
