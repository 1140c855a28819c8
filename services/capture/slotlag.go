package main

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// pollSlotLag sets redms_capture_slot_lag_bytes.
func (a *app) pollSlotLag(ctx context.Context, pool *pgxpool.Pool) error {
	t := time.NewTicker(a.cfg.SlotLagEvery)
	defer t.Stop()
	for {
		var lag int64
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := pool.QueryRow(qctx, SlotLagSQL, a.cfg.Slot).Scan(&lag)
		cancel()
		if err == nil {
			a.m.slotLag.Set(float64(lag))
		} else if ctx.Err() == nil {
			a.log.Debug("poll slot lag", "err", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// SlotLagSQL is the slot's lag in bytes; $1 slot name.
const SlotLagSQL = `SELECT COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint FROM pg_replication_slots WHERE slot_name = $1`
