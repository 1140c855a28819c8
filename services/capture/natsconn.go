package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/natsconn"
	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/services/capture/internal/stream"
)

// connectNATS connects (retrying in the background for ever), makes sure
// the stream exists and fits, and returns the stream's max bytes.
func (a *app) connectNATS(ctx context.Context) (jetstream.JetStream, int64, error) {
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
		return nil, 0, fmt.Errorf("connect to nats: %w", err)
	}
	a.nc.Store(nc)
	a.updateReady()
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(a.cfg.AckTimeout),
		jetstream.WithPublishAsyncMaxPending(a.cfg.MaxInflight+16))
	if err != nil {
		return nil, 0, fmt.Errorf("jetstream: %w", err)
	}
	settings := stream.Settings{Name: a.cfg.Stream, Replicas: a.cfg.StreamReplicas, MaxBytes: a.cfg.StreamMaxBytes, DedupWindow: a.cfg.DedupWindow}
	var created bool
	var cfg jetstream.StreamConfig
	err = a.retry(ctx, "ensure stream", func(ctx context.Context) error {
		c, isNew, err := stream.Ensure(ctx, js, settings)
		if errors.Is(err, stream.ErrMismatch) {
			return service.Permanent(err)
		}
		cfg, created = c, isNew
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	a.log.Info("stream ready", "stream", a.cfg.Stream, "created", created, "max_bytes", cfg.MaxBytes)
	return js, cfg.MaxBytes, nil
}

// moveServer moves capture to another server of REDMS_NATS_URL when the
// one it is on leaves publishes unanswered (natsconn.MoveServer).
func (a *app) moveServer(err error) { natsconn.MoveServer(a.nc.Load(), a.log, err) }

// retry calls f, each call bounded by 10 s, until it succeeds or ctx ends,
// with backoff from 200 ms to 5 s.
func (a *app) retry(ctx context.Context, what string, f func(context.Context) error) error {
	err := service.Retry(ctx, service.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}, service.Bounded(10*time.Second, f), func(err error, wait time.Duration) {
		a.log.Warn(what+": retrying", "err", err, "backoff", wait)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
