package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/services/capture/internal/stream"
)

// connectNATS connects (retrying in the background for ever) and makes sure
// the stream exists and fits.
func (a *app) connectNATS(ctx context.Context) (jetstream.JetStream, error) {
	nc, err := nats.Connect(a.cfg.NATSURL,
		nats.Name("redms-capture"),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ConnectHandler(func(*nats.Conn) { a.updateReady() }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			a.log.Warn("nats disconnected", "err", err)
			a.updateReady()
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			a.log.Info("nats reconnected", "url", c.ConnectedUrl())
			a.updateReady()
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	a.nc.Store(nc)
	a.updateReady()
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(a.cfg.AckTimeout),
		jetstream.WithPublishAsyncMaxPending(a.cfg.MaxInflight+16))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	settings := stream.Settings{Name: a.cfg.Stream, Replicas: a.cfg.StreamReplicas, MaxBytes: a.cfg.StreamMaxBytes, DedupWindow: a.cfg.DedupWindow}
	var invalid error
	created, err := retry(ctx, a.log, "ensure stream", func(ctx context.Context) (bool, error) {
		c, err := stream.Ensure(ctx, js, settings)
		if err != nil && errors.Is(err, stream.ErrMismatch) {
			invalid = err
			return false, nil
		}
		return c, err
	})
	if invalid != nil {
		return nil, invalid
	}
	if err != nil {
		return nil, err
	}
	a.log.Info("stream ready", "stream", a.cfg.Stream, "created", created)
	return js, nil
}

// retry calls f until it succeeds or ctx ends, with backoff.
func retry[T any](ctx context.Context, log *slog.Logger, what string, f func(context.Context) (T, error)) (T, error) {
	wait := 200 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := f(cctx)
		cancel()
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil {
			return v, fmt.Errorf("%s: %w", what, err)
		}
		log.Warn(what+": retrying", "err", err, "backoff", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return v, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		wait = min(wait*2, 5*time.Second)
	}
}
