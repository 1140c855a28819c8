package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/snaprequest"
	"github.com/redms/redms/services/capture/internal/selection"
)

// Selection is capture's table selection as last started, kept in the
// status bucket under SelectionKey: a table that a changed selection
// includes now and did not before is snapshotted (its existing rows never
// came through the stream); a table created later is selected under both
// and is not.
type Selection struct {
	Include string    `json:"include"`
	Exclude string    `json:"exclude"`
	At      time.Time `json:"at"`
}

// SelectionKey is the status bucket's key of the selection of database db.
func SelectionKey(db string) string { return "selection." + keyToken(db) }

func keyToken(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 128 && (r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		} else {
			b.WriteString(fmt.Sprintf("=%X", r))
		}
	}
	return b.String()
}

// TablesSQL lists the source's tables that are not partitions (a partition
// tree is snapshotted through its root) outside the system schemas.
const TablesSQL = `SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname NOT IN ('pg_catalog', 'information_schema')
 AND n.nspname NOT LIKE 'pg\_%' ORDER BY 1, 2`

// Tables lists the source tables sel selects.
func Tables(ctx context.Context, q Querier, sel func(schema, table string) bool) ([][2]string, error) {
	rows, err := q.Query(ctx, TablesSQL)
	if err != nil {
		return nil, fmt.Errorf("list source tables: %w", err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var s, t string
		if err := rows.Scan(&s, &t); err != nil {
			return nil, fmt.Errorf("list source tables: %w", err)
		}
		if sel(s, t) {
			out = append(out, [2]string{s, t})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list source tables: %w", err)
	}
	return out, nil
}

// newlySelected requests snapshots of the tables the current selection
// includes and the one recorded at the last start did not, then records
// the current one. A first start records it only (the initial snapshot,
// if any, was requested before the slot was created).
func (r *Runner) newlySelected(ctx context.Context) error {
	key := SelectionKey(r.cfg.DB)
	cur := Selection{Include: r.cfg.Include, Exclude: r.cfg.Exclude, At: time.Now().UTC()}
	e, err := r.status.Get(ctx, key)
	switch {
	case err == nil:
		var old Selection
		if err := json.Unmarshal(e.Value(), &old); err != nil {
			return fmt.Errorf("decode %s %s: %w", snaprequest.StatusBucket, key, err)
		}
		if old.Include == cur.Include && old.Exclude == cur.Exclude {
			return nil
		}
		before, err := selection.NewFilter(old.Include, old.Exclude)
		if err != nil {
			return fmt.Errorf("the selection recorded in %s %s: %w", snaprequest.StatusBucket, key, err)
		}
		now, err := selection.NewFilter(cur.Include, cur.Exclude)
		if err != nil {
			return err
		}
		tables, err := Tables(ctx, r.q, func(s, t string) bool { return now.Selected(s, t) && !before.Selected(s, t) })
		if err != nil {
			return err
		}
		for _, t := range tables {
			req := snaprequest.Request{Table: t[0] + "." + t[1], Reason: "newly selected (REDMS_INCLUDE_TABLES/REDMS_EXCLUDE_TABLES changed)",
				RequestedBy: "redms-capture", RequestedAt: cur.At}
			if err := snaprequest.Put(ctx, r.requests, r.Key(t[0], t[1]), req); err != nil {
				return err
			}
			r.log.Info("snapshot requested of a newly selected table", "table", req.Table)
		}
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
	default:
		return fmt.Errorf("read %s %s: %w", snaprequest.StatusBucket, key, err)
	}
	b, _ := json.Marshal(cur)
	if _, err := r.status.Put(ctx, key, b); err != nil {
		return fmt.Errorf("record the selection in %s: %w", snaprequest.StatusBucket, err)
	}
	return nil
}
