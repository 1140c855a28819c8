package apply

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/warehouse"
)

// undefinedTable is Postgres' (and Redshift's) SQLSTATE for a missing table.
const undefinedTable = "42P01"

// ensureState creates the state schema once and the state table s once per
// applier.
func (a *Applier) ensureState(ctx context.Context, conn *pgx.Conn, s warehouse.Table) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ready[s.SQL()] {
		return nil
	}
	d, schema := a.cfg.Dialect, a.cfg.StateSchema
	var stmts []string
	if len(a.ready) == 0 {
		n, err := readInt(ctx, conn, warehouse.SchemaExists(d, schema))
		if err != nil {
			return fmt.Errorf("look up state schema %s: %w", schema, err)
		}
		if n == 0 {
			stmts = append(stmts, warehouse.CreateSchema(schema))
		}
	}
	cols, err := introspect(ctx, conn, d, s)
	if err != nil {
		return fmt.Errorf("look up state table %s: %w", s.SQL(), err)
	}
	if len(cols) == 0 {
		stmts = append(stmts, warehouse.CreateStateTable(s))
	}
	for _, stmt := range stmts {
		if _, err := conn.Exec(ctx, stmt, pgx.QueryExecModeSimpleProtocol); err != nil {
			return fmt.Errorf("create state table %s: %w", s.SQL(), err)
		}
	}
	a.ready[s.SQL()] = true
	return nil
}

// legacyTable reports whether the watermark table of loaders before source
// positions exists in the state schema (looked up once).
func (a *Applier) legacyTable(ctx context.Context, q sqlReader) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.legacy != nil {
		return *a.legacy, nil
	}
	cols, err := introspect(ctx, q, a.cfg.Dialect, warehouse.Table{Schema: a.cfg.StateSchema, Name: warehouse.LegacyStateTable})
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", warehouse.LegacyStateTable, err)
	}
	exists := len(cols) > 0
	a.legacy = &exists
	return exists, nil
}

// readState reads the target's state row and, when the window holds
// messages without positions, the legacy watermark. A row of another
// source parks the window: two source tables map to one target.
func (x *job) readState(ctx context.Context, q sqlReader) (appliedState, error) {
	d := x.a.cfg.Dialect
	sql := warehouse.ReadState(x.state)
	rows, err := q.Query(ctx, sql, pgx.QueryExecModeExec)
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == undefinedTable {
		// Dropped since it was created: create it again on the retry.
		x.a.mu.Lock()
		delete(x.a.ready, x.state.SQL())
		x.a.mu.Unlock()
		return appliedState{}, fmt.Errorf("read state %s: %w", x.state.SQL(), warehouse.Detailed(err))
	}
	if err != nil {
		return appliedState{}, x.classify("read state "+x.state.SQL(), err)
	}
	var owners []warehouse.Source
	var st appliedState
	for rows.Next() {
		var src warehouse.Source
		var base, index, legacy int64
		if err := rows.Scan(&src.DB, &src.Schema, &src.Table, &base, &index, &legacy); err != nil {
			rows.Close()
			return appliedState{}, fmt.Errorf("read state %s: %w", x.state.SQL(), warehouse.Detailed(err))
		}
		if len(owners) == 0 {
			st = appliedState{claimed: true, applied: walheader.Pos{Base: uint64(base), Index: uint64(index)}, legacy: uint64(legacy)}
		}
		owners = append(owners, src)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return appliedState{}, x.classify("read state "+x.state.SQL(), err)
	}
	if len(owners) > 0 && owners[0] != x.src {
		err := fmt.Errorf("target %s is fed by source table %s (state table %s); source table %s maps to the same target "+
			"(two databases on one stream, or REDMS_TARGET_SCHEMA folding schemas): give one of them another target, and remove the rows it wrote",
			x.target, owners[0], x.state.SQL(), x.src)
		return appliedState{}, x.park(err.Error(), err)
	}
	if x.hasLegacy() {
		ok, err := x.a.legacyTable(ctx, q)
		if err != nil {
			return appliedState{}, err
		}
		if ok {
			seq, err := readInt(ctx, q, warehouse.LegacyWatermark(d, x.a.cfg.StateSchema, x.target))
			if err != nil {
				return appliedState{}, x.classify("read "+warehouse.LegacyStateTable, err)
			}
			st.legacy = max(st.legacy, uint64(seq))
		}
	}
	return st, nil
}

func (x *job) hasLegacy() bool {
	for i := range x.w.Msgs {
		if legacyMsg(&x.w.Msgs[i]) {
			return true
		}
	}
	return false
}

// claimAndRead claims the state row for the window's source when the table
// has none and reads it, inside the window's transaction, after the lock.
// It fails (a retry) when the state moved since the window was sorted out.
func (x *job) claimAndRead(ctx context.Context, tx pgx.Tx, peeked appliedState) error {
	// Two sources, or two owners, racing to claim the row wait for each
	// other on the lock; should a claim still fail (a primary key collision
	// on Postgres), it is worth a retry, never a park (the retry parks a
	// second source).
	if _, err := tx.Exec(ctx, warehouse.ClaimState(x.a.cfg.Dialect, x.state, x.target, x.src, x.a.now()), pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("claim state row of %s: %w", x.target, warehouse.Detailed(err))
	}
	locked, err := x.readState(ctx, tx)
	if err != nil {
		return err
	}
	if locked.applied != peeked.applied || locked.legacy != peeked.legacy {
		return fmt.Errorf("applied position of %s moved from %s (legacy seq %d) to %s (legacy seq %d) while staging: another owner applied; retry",
			x.target, peeked.applied, peeked.legacy, locked.applied, locked.legacy)
	}
	return nil
}

// advance is the statement that records the window's position.
func (x *job) advance() (string, error) {
	base, index, err := posInts(x.sel.last)
	if err != nil {
		return "", x.park(err.Error(), err)
	}
	pos := ""
	if !x.sel.last.IsZero() {
		pos = x.sel.last.String()
	}
	return warehouse.AdvanceState(x.a.cfg.Dialect, x.state, x.src, base, index, pos, int64(x.sel.legacy), x.res.LastLSN, x.a.now()), nil
}
