package main

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// walStatuses are the values of pg_replication_slots.wal_status, each a
// series of redms_capture_slot_wal_status.
var walStatuses = []string{"reserved", "extended", "unreserved", "lost"}

// pollSlotLag sets the slot's gauges (lag, retained WAL, wal_status),
// beating a heartbeat each turn (a query takes at most 5 s). A slot whose
// WAL is no longer kept (unreserved, lost) is logged as an error at each
// change of status: changes are or will be missing, and only a snapshot
// repairs them (docs/DESIGN.md §7, §9).
func (a *app) pollSlotLag(ctx context.Context, pool *pgxpool.Pool) error {
	t := time.NewTicker(a.cfg.SlotLagEvery)
	defer t.Stop()
	hb := a.health.Heartbeat("slot lag poll", 2*a.cfg.SlotLagEvery+10*time.Second)
	defer hb.Stop()
	last := ""
	for {
		hb.Beat()
		var (
			lag, retained int64
			status        string
		)
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := pool.QueryRow(qctx, SlotLagSQL, a.cfg.Slot).Scan(&lag, &retained, &status)
		cancel()
		if err == nil {
			a.m.slotLag.Set(float64(lag))
			a.m.slotRetained.Set(float64(retained))
			for _, s := range walStatuses {
				v := 0.0
				if s == status {
					v = 1
				}
				a.m.slotWALStatus.WithLabelValues(s).Set(v)
			}
			if status != last {
				switch status {
				case "unreserved", "lost":
					a.log.Error("slot WAL is not kept: changes since its confirmed position are or will be lost (max_slot_wal_keep_size); run the snapshot runbook for its tables (deploy/README.md)",
						"slot", a.cfg.Slot, "wal_status", status, "retained_wal_bytes", retained, "lag_bytes", lag)
				case "extended":
					a.log.Warn("slot retains more WAL than max_wal_size", "slot", a.cfg.Slot, "wal_status", status, "retained_wal_bytes", retained)
				}
				last = status
			}
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

// SlotLagSQL reads the slot's lag (current WAL - confirmed flush), the WAL
// it retains (current WAL - restart_lsn), in bytes, and its wal_status;
// $1 slot name.
const SlotLagSQL = `SELECT COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint, ` +
	`COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint, COALESCE(wal_status, '') ` +
	`FROM pg_replication_slots WHERE slot_name = $1`
