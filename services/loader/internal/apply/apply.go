// Package apply applies one window of a table's changes to the warehouse in
// one transaction (DESIGN §4, §5): skip what the watermark says is applied
// (messages arrive parsed, see Msg), fold per key, fit values to the target types, stage gzipped CSV in
// S3, then in one transaction create/alter the table, COPY into temp tables,
// delete, insert, update, empty on TRUNCATE, advance the watermark, commit.
//
// Keys: the Redms-Keys header of the window's newest message that carries
// one; when it is empty or absent, REDMS_TABLE_KEYS for the table; else the
// column "id" (unless capture said the table has no key). Key source
// replica-identity-full makes the whole row the key. A table without a usable
// key is skipped, counted under Skipped["no-key"], and logged at error level;
// its messages can be acked, since nothing could ever apply them.
//
// Watermark (docs/CONTRACTS.md): read once before staging to drop messages at
// or below it; read again, locked, inside the transaction: if it moved, a
// stale owner committed meanwhile and the window is retried (a transient
// error). Objects are staged under keys derived from the window's first and
// last sequence, so a retry overwrites them.
//
// Errors: a record that does not parse, a change fold cannot use, or a
// statement the warehouse refuses for good (data, type, name, syntax) is a
// *ParkError. Anything else (connection, serialization, S3) is transient.
//
// The target mirrors the source's column set: a column the source no longer
// sends (judged from INSERT/UPDATE row images) is dropped, so do not add your
// own columns to redms targets. A column is never narrowed: a wider existing
// VARCHAR, NUMERIC, integer or float column is kept as it is. A retype casts existing values
// (Postgres ALTER … USING, Redshift add/copy/drop/rename); a cast the
// warehouse refuses parks the table.
//
// On Redshift, VARCHAR widening runs before the transaction (Redshift refuses
// ALTER COLUMN TYPE inside one), widening each column at once to the longest
// length any segment of the window needs; every other DDL runs inside.
// The Postgres dialect loads the same staged CSV with COPY FROM STDIN, from
// the bytes it uploaded (or, without an S3 client, without uploading).
package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/fold"
	"github.com/redms/redms/services/loader/internal/stage"
	"github.com/redms/redms/services/loader/internal/warehouse"
)

// Applier applies windows. Safe for concurrent use by windows of different
// tables.
type Applier struct {
	cfg   Config
	db    *pgxpool.Pool
	store *stage.Store
	log   *slog.Logger
	now   func() time.Time
	// beforeTx runs between staging and the transaction (tests only).
	beforeTx func()

	mu         sync.Mutex
	stateReady bool
}

// New checks cfg and returns an Applier. s3c may be nil for the Postgres
// dialect (nothing is staged in S3 then).
func New(cfg Config, db *pgxpool.Pool, s3c *s3.Client, log *slog.Logger) (*Applier, error) {
	switch cfg.Dialect {
	case warehouse.Postgres, warehouse.Redshift:
	default:
		return nil, fmt.Errorf("new applier: unknown dialect %q", cfg.Dialect)
	}
	if cfg.StateSchema == "" {
		cfg.StateSchema = "public"
	}
	if cfg.NumericDefault.Precision == 0 {
		cfg.NumericDefault = typemap.DefaultNumeric
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Applier{cfg: cfg, db: db, log: log, now: time.Now}
	if s3c != nil {
		if cfg.S3Bucket == "" {
			return nil, errors.New("new applier: an S3 client needs a bucket")
		}
		a.store = &stage.Store{Client: s3c, Bucket: cfg.S3Bucket}
	}
	if cfg.Dialect == warehouse.Redshift && a.store == nil {
		return nil, errors.New("new applier: redshift loads from S3: an S3 client and bucket are required")
	}
	if cfg.Dialect == warehouse.Redshift && cfg.RedshiftIAMRole == "" && (cfg.S3AccessKeyID == "" || cfg.S3SecretAccessKey == "") {
		return nil, errors.New("new applier: redshift COPY needs an IAM role or an S3 access key pair to read the staged objects")
	}
	return a, nil
}

// window is one Apply call's working state.
type window struct {
	a      *Applier
	w      Window
	res    Result
	tgt    warehouse.Table
	target string // watermark row: the target's quoted qualified name
	spec   keySpec
	fresh  int // messages above the watermark
	log    *slog.Logger
}

func (x *window) park(reason string, err error) *ParkError {
	first, last := x.w.Msgs[0], x.w.Msgs[len(x.w.Msgs)-1]
	return &ParkError{
		Table:    x.w.Table.String(),
		FirstLSN: x.res.FirstLSN, LastLSN: x.res.LastLSN,
		FirstSeq: first.Seq, LastSeq: last.Seq,
		Reason: reason, Err: err,
	}
}

// Apply applies one window; see the package doc.
func (a *Applier) Apply(ctx context.Context, w Window) (Result, error) {
	x := &window{
		a: a, w: w,
		res: Result{Rows: map[string]int{}, Skipped: map[string]int{}, Adjusted: map[string]int{}},
		log: a.log.With("table", w.Table.String()),
	}
	if len(w.Msgs) == 0 {
		return x.res, nil
	}
	x.res.FirstLSN = w.Msgs[0].Meta.LSN
	x.res.LastLSN = w.Msgs[len(w.Msgs)-1].Meta.LSN
	schema := a.cfg.TargetSchema
	if schema == "" {
		schema = w.Table.Schema
	}
	x.tgt = warehouse.Table{Schema: schema, Name: w.Table.Name}
	x.target = x.tgt.SQL()
	for _, id := range []string{x.tgt.Schema, x.tgt.Name, a.cfg.StateSchema} {
		if err := warehouse.CheckIdent(id); err != nil {
			return x.res, x.park(err.Error(), err)
		}
	}

	for _, m := range w.Msgs {
		if m.MetaErr != nil {
			return x.res, x.park(fmt.Sprintf("message seq %d: %v", m.Seq, m.MetaErr), m.MetaErr)
		}
	}
	spec, keyed := x.keySpec()
	if !keyed {
		return x.skipNoKey("no key: no primary key, replica identity is not FULL and no REDMS_TABLE_KEYS entry"), nil
	}
	x.spec = spec

	conn, err := a.db.Acquire(ctx)
	if err != nil {
		return x.res, fmt.Errorf("acquire warehouse connection: %w", err)
	}
	defer conn.Release()
	if a.cfg.Dialect == warehouse.Redshift {
		if _, err := conn.Exec(ctx, warehouse.SetCaseSensitive(), pgx.QueryExecModeSimpleProtocol); err != nil {
			return x.res, fmt.Errorf("set case-sensitive identifiers: %w", err)
		}
	}
	if err := a.ensureState(ctx, conn.Conn()); err != nil {
		return x.res, err
	}
	applied, err := readSeq(ctx, conn.Conn(), warehouse.PeekWatermark(a.cfg.Dialect, a.cfg.StateSchema, x.target))
	if err != nil {
		return x.res, fmt.Errorf("read watermark of %s: %w", x.target, err)
	}

	changes, err := x.parse(applied)
	if err != nil {
		return x.res, err
	}
	if x.fresh == 0 {
		return x.res, nil // all applied before: ack
	}
	folded, err := fold.Fold(changes, x.spec.KeySpec)
	if err != nil {
		if x.spec.Default && errors.Is(err, fold.ErrNoKey) {
			return x.skipNoKey("no key: changes lack the default key column id"), nil
		}
		return x.res, x.park(err.Error(), err)
	}
	x.res.Replays += folded.Replays

	cur, err := introspect(ctx, conn.Conn(), a.cfg.Dialect, x.tgt)
	if err != nil {
		return x.res, fmt.Errorf("introspect %s: %w", x.target, err)
	}
	schemaExists := true
	if cur == nil {
		n, err := readSeq(ctx, conn.Conn(), warehouse.SchemaExists(a.cfg.Dialect, x.tgt.Schema))
		if err != nil {
			return x.res, fmt.Errorf("look up schema of %s: %w", x.target, err)
		}
		schemaExists = n > 0
	}
	p, err := x.plan(folded, cur, schemaExists)
	if err != nil {
		return x.res, err
	}
	if err := x.stage(ctx, p); err != nil {
		return x.res, err
	}
	if a.beforeTx != nil {
		a.beforeTx()
	}
	for _, stmt := range p.before {
		if _, err := conn.Exec(ctx, stmt, pgx.QueryExecModeSimpleProtocol); err != nil {
			return x.res, x.classify("widen varchar column", err)
		}
	}
	if err := x.transact(ctx, conn.Conn(), p, applied); err != nil {
		return x.res, err
	}
	x.res.Applied = true
	x.res.StagedBytes = p.stagedBytes
	if !a.cfg.KeepObjects && a.store != nil && len(p.objects) > 0 {
		if err := a.store.Delete(ctx, p.objects); err != nil {
			x.log.Warn("delete staged objects", "err", err, "lsn", x.res.LastLSN)
		}
	}
	return x.res, nil
}

func (x *window) skipNoKey(why string) Result {
	x.res.Skipped["no-key"] += len(x.w.Msgs)
	x.log.Error("table skipped: "+why, "lsn", x.res.LastLSN, "messages", len(x.w.Msgs))
	return x.res
}

// classify turns a warehouse error into a ParkError when it is permanent.
func (x *window) classify(action string, err error) error {
	if warehouse.Permanent(err) {
		return x.park(fmt.Sprintf("%s: %v", action, err), err)
	}
	return fmt.Errorf("%s on %s: %w", action, x.target, err)
}

// keySpec decides the window's key columns; false when the table has none.
func (x *window) keySpec() (keySpec, bool) {
	var keys []string
	source := ""
	for i := len(x.w.Msgs) - 1; i >= 0; i-- {
		m := x.w.Msgs[i].Meta
		if source == "" && m.KeySource != "" {
			source = m.KeySource
		}
		if len(m.Keys) > 0 {
			keys, source = m.Keys, m.KeySource
			break
		}
	}
	if source == walheader.KeySourceReplicaIdentityFull {
		return keySpec{KeySpec: fold.KeySpec{Full: true}}, true
	}
	if len(keys) > 0 {
		return keySpec{KeySpec: fold.KeySpec{Columns: keys}}, true
	}
	if k := x.a.cfg.TableKeys[x.w.Table.Schema+"."+x.w.Table.Name]; len(k) > 0 {
		return keySpec{KeySpec: fold.KeySpec{Columns: k}}, true
	}
	if source == walheader.KeySourceNone {
		return keySpec{}, false
	}
	return keySpec{KeySpec: fold.KeySpec{Columns: []string{"id"}}, Default: true}, true
}

type keySpec struct {
	fold.KeySpec
	Default bool // the "id" fallback
}

// parse drops messages at or below the watermark and parses the rest.
func (x *window) parse(applied int64) ([]fold.Change, error) {
	changes := make([]fold.Change, 0, len(x.w.Msgs))
	for i := range x.w.Msgs {
		m := &x.w.Msgs[i]
		if int64(m.Seq) <= applied {
			x.res.Replays++
			continue
		}
		meta := m.Meta
		if err := m.RecordErr; err != nil {
			reason := err.Error()
			var pe *testdecoding.ParseError
			if errors.As(err, &pe) {
				reason = pe.Reason
			}
			return nil, x.park(fmt.Sprintf("unparseable record at lsn %s (seq %d): %s", meta.LSN, m.Seq, reason), err)
		}
		rec := &m.Record
		x.fresh++
		if meta.CommitTime.After(x.res.LastCommit) {
			x.res.LastCommit = meta.CommitTime
		}
		switch rec.Kind {
		case testdecoding.KindInsert, testdecoding.KindUpdate, testdecoding.KindDelete, testdecoding.KindTruncate:
			changes = append(changes, fold.Change{Seq: m.Seq, LSN: meta.LSN, Record: rec})
		}
	}
	return changes, nil
}

func readSeq(ctx context.Context, conn *pgx.Conn, sql string) (int64, error) {
	var seq int64
	err := conn.QueryRow(ctx, sql, pgx.QueryExecModeSimpleProtocol).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return seq, err
}

// ensureState creates the state schema and watermark table once.
func (a *Applier) ensureState(ctx context.Context, conn *pgx.Conn) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stateReady {
		return nil
	}
	d, schema := a.cfg.Dialect, a.cfg.StateSchema
	var stmts []string
	n, err := readSeq(ctx, conn, warehouse.SchemaExists(d, schema))
	if err != nil {
		return fmt.Errorf("look up state schema %s: %w", schema, err)
	}
	if n == 0 {
		stmts = append(stmts, warehouse.CreateSchema(schema))
	}
	cols, err := introspect(ctx, conn, d, warehouse.StateName(schema))
	if err != nil {
		return fmt.Errorf("look up watermark table in %s: %w", schema, err)
	}
	if len(cols) == 0 {
		stmts = append(stmts, warehouse.CreateState(schema))
	}
	for _, stmt := range stmts {
		if _, err := conn.Exec(ctx, stmt, pgx.QueryExecModeSimpleProtocol); err != nil {
			return fmt.Errorf("create watermark table in %s: %w", schema, err)
		}
	}
	a.stateReady = true
	return nil
}

// introspect returns the target's columns, nil when the table is missing.
func introspect(ctx context.Context, conn *pgx.Conn, d warehouse.Dialect, t warehouse.Table) ([]warehouse.Column, error) {
	rows, err := conn.Query(ctx, warehouse.Columns(d, t), pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []warehouse.Column
	for rows.Next() {
		var name, dataType string
		var charLen, prec, scale *int64
		if err := rows.Scan(&name, &dataType, &charLen, &prec, &scale); err != nil {
			return nil, err
		}
		tg, _ := warehouse.TargetFromInfoSchema(dataType, charLen, prec, scale)
		cols = append(cols, warehouse.Column{Name: name, Type: tg})
	}
	return cols, rows.Err()
}
