package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/snaprequest"
	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/services/capture/internal/snapshot"
)

// snapshotRunner opens the snapshot buckets and returns the runner that
// performs their requests (docs/DESIGN.md §7).
func (a *app) snapshotRunner(ctx context.Context, out sinkLoop, pool *pgxpool.Pool, res snapshot.Resolver, coord *snapshot.Coordinator, db string) (*snapshot.Runner, jetstream.KeyValue, error) {
	var requests, status jetstream.KeyValue
	if err := a.retry(ctx, "open kv bucket "+snaprequest.RequestsBucket, func(ctx context.Context) (err error) {
		requests, err = snaprequest.OpenRequests(ctx, out.js, a.cfg.StreamReplicas)
		return err
	}); err != nil {
		return nil, nil, err
	}
	if err := a.retry(ctx, "open kv bucket "+snaprequest.StatusBucket, func(ctx context.Context) (err error) {
		status, err = snaprequest.OpenStatus(ctx, out.js, a.cfg.StreamReplicas)
		return err
	}); err != nil {
		return nil, nil, err
	}
	partBytes := a.cfg.BatchBytes
	if max := int(a.nc.Load().MaxPayload()) - 64<<10; max > 0 && partBytes > max {
		partBytes = max
	}
	cfg := snapshot.Config{DB: db, ChunkRows: a.cfg.SnapshotChunkRows, Rate: a.cfg.SnapshotRate, FullMaxRows: a.cfg.SnapshotFullMaxRows,
		PartRecords: a.cfg.BatchRecords, PartBytes: partBytes, Selected: a.cfg.filter.Selected,
		Include: a.cfg.IncludeTables, Exclude: a.cfg.ExcludeTables, Active: a.srcReady.Load}
	m := snapshot.Metrics{
		Rows:      func(t string, n int) { a.m.snapRows.WithLabelValues(t).Add(float64(n)) },
		Remaining: func(t string, n int64) { a.m.snapLeft.WithLabelValues(t).Set(float64(n)) },
	}
	return snapshot.NewRunner(cfg, pool, res, coord, out.acked, requests, status, a.log, m), requests, nil
}

// requestInitial requests a snapshot of every selected table: capture is
// about to create the slot of a source it never read, so the rows that
// exist already would otherwise never arrive.
func (a *app) requestInitial(ctx context.Context, pool *pgxpool.Pool, requests jetstream.KeyValue, db string) error {
	names, err := snapshot.Tables(ctx, pool, a.cfg.filter.Selected)
	if err != nil {
		return fmt.Errorf("initial snapshot: %w", err)
	}
	now := time.Now().UTC()
	for _, n := range names {
		key := subject.KVKey(subject.Table{DB: db, Schema: n[0], Name: n[1]})
		req := snaprequest.Request{Table: n[0] + "." + n[1], Reason: "first start: capture creates the slot", RequestedBy: "redms-capture", RequestedAt: now}
		if err := snaprequest.Put(ctx, requests, key, req); err != nil {
			return err
		}
	}
	a.log.Info("initial snapshot requested (REDMS_SNAPSHOT=initial)", "tables", len(names))
	return nil
}
