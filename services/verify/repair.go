package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/pkg/snaprequest"
	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/verify/internal/compare"
)

// Repair is what --repair did to one table.
type Repair struct {
	Table string `json:"table"`
	// ID is our request's id (REDMS_SNAPSHOT_REQUESTS), Snapshot the id of
	// the snapshot that performed it.
	ID       string `json:"id"`
	Snapshot string `json:"snapshot,omitempty"`
	// Whole: the whole table was requested, else Ranges key ranges.
	Whole  bool  `json:"whole"`
	Ranges int   `json:"ranges"`
	Rows   int64 `json:"rows"`
	// Differences the first pass found.
	Differences int    `json:"differences"`
	LastPos     string `json:"last_pos,omitempty"`
	Applied     string `json:"applied_pos,omitempty"`
}

// report is the output: the final result per table and, with --repair,
// what was repaired and what the first pass found.
type report struct {
	compare.Report
	Repairs []Repair              `json:"repairs,omitempty"`
	Before  []compare.TableResult `json:"before,omitempty"`
}

// repairer requests snapshots of what differs and waits until the
// warehouse holds them (docs/DESIGN.md §8).
type repairer struct {
	src, wh  *pgxpool.Pool
	requests jetstream.KeyValue
	js       jetstream.JetStream
	db       string
	opts     compare.Options
	log      *slog.Logger
	poll     time.Duration
}

// repairRun compares, and when differences were found requests their
// snapshot, waits for it (at most timeout) and compares those tables again.
func repairRun(ctx context.Context, p *service.Process, cfg Config, src, wh *pgxpool.Pool) (report, error) {
	opts := cfg.opts
	first, err := compare.Compare(ctx, src, wh, opts)
	if err != nil {
		return report{Report: first}, err
	}
	if first.ExitCode() != 1 {
		return report{Report: first}, nil
	}
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("redms-verify --repair"))
	if err != nil {
		return report{Report: first}, fmt.Errorf("connect to nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return report{Report: first}, fmt.Errorf("jetstream: %w", err)
	}
	requests, err := snaprequest.OpenRequests(ctx, js, 0)
	if err != nil {
		return report{Report: first}, err
	}
	db := cfg.Database
	if db == "" {
		if err := src.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
			return report{Report: first}, fmt.Errorf("read the source's current database: %w", err)
		}
	}
	r := &repairer{src: src, wh: wh, requests: requests, js: js, db: db, opts: opts, log: p.Log, poll: cfg.repairPoll}
	out := report{Report: first, Before: first.Tables}
	var again []compare.Name
	for _, tr := range first.Tables {
		if tr.Status != compare.Different {
			continue
		}
		rp, err := r.request(ctx, tr)
		if err != nil {
			return out, err
		}
		out.Repairs = append(out.Repairs, rp)
		again = append(again, compare.ParseName(tr.Table))
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.RepairTimeout)
	defer cancel()
	for i := range out.Repairs {
		if err := r.wait(wctx, &out.Repairs[i]); err != nil {
			if ctx.Err() == nil && wctx.Err() != nil {
				err = fmt.Errorf("repair of %s timed out after %v (REDMS_VERIFY_REPAIR_TIMEOUT): %w", out.Repairs[i].Table, cfg.RepairTimeout, err)
			}
			return out, err
		}
	}
	// The second pass, over the repaired tables only: the others were equal.
	opts.Tables = again
	second, err := compare.Compare(ctx, src, wh, opts)
	if err != nil {
		return out, err
	}
	out.Report = compare.Report{Tables: slices.Clone(first.Tables)}
	for _, tr := range second.Tables {
		for i := range out.Tables {
			if out.Tables[i].Table == tr.Table {
				out.Tables[i] = tr
			}
		}
	}
	return out, nil
}

// request records a snapshot request for what differs in tr.
func (r *repairer) request(ctx context.Context, tr compare.TableResult) (Repair, error) {
	rp := Repair{Table: tr.Table, ID: "verify-" + token(), Differences: tr.Differences()}
	ranges, whole, err := compare.RepairRanges(ctx, r.src, tr)
	if err != nil {
		return rp, err
	}
	rp.Whole, rp.Ranges = whole, len(ranges)
	n := compare.ParseName(tr.Table)
	host, _ := os.Hostname()
	req := snaprequest.Request{Table: tr.Table, Reason: fmt.Sprintf("redms-verify --repair: %d rows differ", tr.Differences()),
		RequestedBy: "redms-verify@" + host, RequestedAt: time.Now().UTC(), ID: rp.ID, Ranges: ranges}
	if err := snaprequest.Put(ctx, r.requests, r.key(n), req); err != nil {
		return rp, err
	}
	r.log.Info("requested a snapshot", "table", tr.Table, "id", rp.ID, "whole", whole, "ranges", len(ranges), "differences", rp.Differences)
	return rp, nil
}

func (r *repairer) key(n compare.Name) string {
	return subject.KVKey(subject.Table{DB: r.db, Schema: n.Schema, Name: n.Table})
}

// wait returns once the snapshot that took our request on is done and the
// table's applied position in the warehouse passed its last position.
func (r *repairer) wait(ctx context.Context, rp *Repair) error {
	n := compare.ParseName(rp.Table)
	var status jetstream.KeyValue
	var said string
	say := func(msg string, args ...any) {
		if s := fmt.Sprint(msg, args); s != said {
			said = s
			r.log.Info(msg, append([]any{"table", rp.Table, "id", rp.ID}, args...)...)
		}
	}
	var last walheader.Pos
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		st, ok, err := r.status(ctx, &status, n)
		if err != nil {
			return err
		}
		switch {
		case !ok || !slices.Contains(st.RequestIDs, rp.ID):
			say("waiting for redms-capture to take the snapshot request on")
		case st.State == snaprequest.StateFailed || st.State == snaprequest.StateRefused:
			return fmt.Errorf("snapshot %s of %s %s: %s", st.ID, rp.Table, st.State, st.Error)
		case st.State != snaprequest.StateDone:
			say("snapshot in progress", "snapshot", st.ID, "state", st.State, "rows_done", st.RowsDone, "rows_estimate", st.RowsEstimate)
		default:
			rp.Snapshot, rp.Rows, rp.LastPos = st.ID, st.RowsDone, st.LastPos
			if st.LastPos != "" {
				if last, err = walheader.ParsePos(st.LastPos); err != nil {
					return fmt.Errorf("snapshot %s of %s: last_pos: %w", st.ID, rp.Table, err)
				}
			}
			applied, ok, err := compare.Applied(ctx, r.wh, n, r.opts)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%s: the warehouse has no redms state for it, so the snapshot cannot be seen applied", rp.Table)
			}
			rp.Applied = applied.String()
			if applied.Compare(last) >= 0 {
				r.log.Info("snapshot applied", "table", rp.Table, "id", rp.ID, "snapshot", st.ID, "rows", st.RowsDone, "last_pos", st.LastPos, "applied_pos", rp.Applied)
				return nil
			}
			say("snapshot done, waiting for the warehouse to apply it", "snapshot", st.ID, "rows", st.RowsDone, "last_pos", st.LastPos)
		}
		if err := service.Sleep(ctx, r.poll); err != nil {
			return err
		}
	}
}

// status reads n's snapshot status; the bucket is opened once it exists
// (capture creates it).
func (r *repairer) status(ctx context.Context, kv *jetstream.KeyValue, n compare.Name) (snaprequest.Status, bool, error) {
	var st snaprequest.Status
	if *kv == nil {
		b, err := r.js.KeyValue(ctx, snaprequest.StatusBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return st, false, nil
		}
		if err != nil {
			return st, false, fmt.Errorf("open kv bucket %s: %w", snaprequest.StatusBucket, err)
		}
		*kv = b
	}
	return snaprequest.GetStatus(ctx, *kv, r.key(n))
}

func token() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
