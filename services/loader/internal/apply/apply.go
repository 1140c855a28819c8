// Package apply applies one window of a table's changes to the warehouse in
// one transaction (docs/DESIGN.md §2.3, §4, §5): order the window's messages
// by source position against the target's applied position (order.go: drop
// replays and duplicates, join split records, hold what waits for a missing
// change), fold per key, fit values to the target types, stage one gzipped
// CSV file in S3, then in one transaction lock the target's state table and
// the target, read the state row, COPY the file into one staging table, and
// per segment empty on TRUNCATE (only a leaf's bounds for a partition's),
// create, alter or rebuild the table, delete, insert, update from the
// staged rows of each step; advance the applied position, commit.
//
// Keys: the Redms-Keys header of the window's newest message that carries
// one; when it is empty or absent, REDMS_TABLE_KEYS for the table; else the
// column "id" (unless capture said the table has no key). Key source
// replica-identity-full makes the whole row the key. A change whose table
// had no key when capture read it (key source none and no configured key,
// or the "id" default and no such column) is keyless: an INSERT is applied
// as a plain insert, an UPDATE or DELETE (no key, no old row) is not
// applied: it is counted in Result.Unapplied, logged, and a snapshot of the
// table is requested (SnapshotRequester) before the transaction commits,
// so before its message leaves the stream.
//
// State (docs/CONTRACTS.md): one state table per target holding the source
// table that feeds it and the position applied last (state.go). It is read
// once before staging to sort the window out, and again inside the
// transaction, after the transaction locked it and the target before its
// first query (so under SNAPSHOT isolation as under SERIALIZABLE a second
// owner waits for the first to commit, then sees its position): if it
// moved, another owner committed meanwhile and the window is retried (a
// transient error). A window of a different source
// than the one the state names parks, naming both. Objects are staged under
// keys derived from the window's first and last sequence, so a retry
// overwrites them.
//
// Errors: a record that does not parse, a change fold cannot use, or a
// statement the warehouse refuses for good (warehouse.Permanent) is a
// *ParkError. Anything else (connection, serialization, S3) is transient.
//
// The target mirrors the source's column set: a column the source no longer
// sends (judged from INSERT/UPDATE row images) is dropped, so do not add your
// own columns to redms targets. A column is never narrowed: a wider existing
// VARCHAR, NUMERIC, integer or float column is kept as it is. A retype casts existing values
// (Postgres ALTER … USING, Redshift add/copy/drop/rename); a cast the
// warehouse refuses parks the table. Declared types (Redms-Types, of the
// window's newest message that carries them) give numeric(p,s) and
// varchar(n) their modifiers (typemap.Declared); a VARCHAR is sized for
// the window once: the longest its declared types map to, and at least
// its longest value where that is below the maximum. On Redshift a created
// target declares the key as PRIMARY KEY (the source's primary key only)
// and SORTKEY and is distributed per Config.DistStyle; a retype, widening
// or drop that hits a DISTKEY or SORTKEY column (or widening a column
// whose encoding forbids it) rebuilds the table (create the new shape,
// copy, drop, rename) inside the window's transaction. A column added with a constant default
// (Redms-Missing) is filled with that value in the target's existing rows.
// Only changes above the applied position reach the fold, so a replay never
// drives DDL.
//
// On Redshift, VARCHAR widening runs before the transaction (Redshift refuses
// ALTER COLUMN TYPE inside one), widening each column at once to the longest
// length any segment of the window needs; every other DDL runs inside.
// The Postgres dialect loads the same staged CSV with COPY FROM STDIN, from
// the bytes it uploaded (or, without an S3 client, without uploading).
// Reads use pgx's extended protocol (Redshift's startup parameters make pgx
// refuse simple-protocol queries); statements without results use the
// simple protocol.
package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/fold"
	"github.com/redms/redms/services/loader/internal/stage"
	"github.com/redms/redms/services/loader/internal/warehouse"
)

// Config is what the applier needs to know.
type Config struct {
	Dialect        warehouse.Dialect   // postgres or redshift
	TargetSchema   string              // "" = the source schema
	StateSchema    string              // schema of the state tables, default "public"
	TableKeys      map[string][]string // "schema.table" -> key columns, used when the Redms-Keys header is empty or absent
	NumericDefault typemap.Numeric     // target of an unconstrained numeric, default 19,8

	S3Bucket, S3Prefix string
	PartBytes          int64
	KeepObjects        bool

	RedshiftIAMRole                            string
	S3AccessKeyID, S3SecretAccessKey, S3Region string
	DistStyle                                  warehouse.DistStyle // created Redshift targets; default key
	JSONSuper                                  bool                // Redshift: json and jsonb as SUPER
	ByteaVarbyte                               bool                // Redshift: bytea as VARBYTE
}

// SnapshotRequester records that a table needs a snapshot (docs/DESIGN.md
// §7): changes of it arrived that cannot be applied.
type SnapshotRequester interface {
	Request(ctx context.Context, t subject.Table, reason, firstLSN, lastLSN string) error
}

// Result says what a window did. Held are indexes into the window's
// messages that must stay in the stream and come again in the runner's
// next window (they wait for a change that has not arrived); every other
// message of the window was applied, or found applied before, and may leave
// the stream.
type Result struct {
	Applied     bool           // false when nothing was applied (all replays or held)
	Changes     int            // changes applied (messages accepted)
	Rows        map[string]int // by action: "insert" (upsert), "delete", "update", "truncate"
	Replays     int            // replay-shaped orders, plus messages at or below the applied position
	Unapplied   map[string]int // changes that cannot be applied, by reason ("no-key"); a snapshot was requested
	Adjusted    map[string]int // value rule applications by rule (typemap.Rule*)
	StagedBytes int64
	Copies      int       // COPY statements the window ran (one staging COPY, or none)
	LastCommit  time.Time // Redms-Commit-Time of the newest change applied
	FirstLSN    string
	LastLSN     string

	Held []int
	// WaitFor is what the first held change waits for: its prev position,
	// or, when Partial, its own missing parts. HeldAt is its position.
	WaitFor, HeldAt walheader.Pos
	Partial         bool
	// Position is the target's applied position after the window, LegacySeq
	// its fence for messages without positions: a message at or below them
	// is applied.
	Position  walheader.Pos
	LegacySeq uint64
}

// ParkError is a permanent failure: the window cannot be applied as it is
// (unparseable record, a value or DDL the warehouse rejects for good). The
// table must park.
type ParkError struct {
	Table             string
	FirstLSN, LastLSN string
	FirstSeq, LastSeq uint64
	Reason            string
	Err               error
}

func (e *ParkError) Error() string {
	return fmt.Sprintf("park %s (lsn %s..%s, seq %d..%d): %s", e.Table, e.FirstLSN, e.LastLSN, e.FirstSeq, e.LastSeq, e.Reason)
}

func (e *ParkError) Unwrap() error { return e.Err }

// Applier applies windows. Safe for concurrent use by windows of different
// tables.
type Applier struct {
	cfg   Config
	db    *pgxpool.Pool
	store *stage.Store
	snaps SnapshotRequester
	log   *slog.Logger
	now   func() time.Time
	// beforeTx runs between staging and the transaction, locked runs in
	// the transaction right after its lock (tests only).
	beforeTx, locked func()

	mu     sync.Mutex
	ready  map[string]bool // state tables known to exist, by quoted name
	legacy *bool           // whether the legacy watermark table exists
}

// New checks cfg and returns an Applier. s3c may be nil for the Postgres
// dialect (nothing is staged in S3 then); snaps may be nil only where no
// change without a key can arrive (tests).
func New(cfg Config, db *pgxpool.Pool, s3c *s3.Client, snaps SnapshotRequester, log *slog.Logger) (*Applier, error) {
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
	if cfg.DistStyle == "" {
		cfg.DistStyle = warehouse.DistKey
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Applier{cfg: cfg, db: db, snaps: snaps, log: log, now: time.Now, ready: map[string]bool{}}
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

// job is one Apply call's working state.
type job struct {
	a      *Applier
	w      Window
	res    Result
	tgt    warehouse.Table
	target string          // the target's quoted qualified name
	state  warehouse.Table // its state table
	src    warehouse.Source
	spec   keySpec
	sel    selection
	log    *slog.Logger
	// declared: the declared types of the window's newest message that
	// carries them.
	declared map[string]string
}

func (x *job) park(reason string, err error) *ParkError {
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
	x := &job{
		a: a, w: w,
		res: Result{Rows: map[string]int{}, Unapplied: map[string]int{}, Adjusted: map[string]int{}},
		log: a.log.With("table", w.Table.String()),
		src: warehouse.Source{DB: w.Table.DB, Schema: w.Table.Schema, Table: w.Table.Name},
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
	x.state = warehouse.StateTable(a.cfg.StateSchema, x.tgt)
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
	if err := a.ensureState(ctx, conn.Conn(), x.state); err != nil {
		return x.res, err
	}
	st, err := x.readState(ctx, conn.Conn())
	if err != nil {
		return x.res, err
	}
	if x.sel, err = x.order(st); err != nil {
		return x.res, err
	}
	x.snapshotSelect()
	x.settle(st)
	if len(x.sel.accepted) == 0 {
		return x.res, nil // all applied before, or held
	}
	x.res.FirstLSN = x.sel.accepted[0].msg.Meta.LSN
	x.res.LastLSN = x.sel.accepted[len(x.sel.accepted)-1].msg.Meta.LSN
	x.spec = x.keySpec()
	for i := len(x.sel.accepted) - 1; i >= 0 && x.declared == nil; i-- {
		x.declared = x.sel.accepted[i].msg.Meta.Types
	}
	changes, err := x.changes()
	if err != nil {
		return x.res, err
	}
	folded, err := fold.Fold(changes, x.spec.KeySpec)
	if err != nil {
		return x.res, x.park(err.Error(), err)
	}
	x.res.Replays += folded.Replays

	cur, err := introspect(ctx, conn.Conn(), a.cfg.Dialect, x.tgt)
	if err != nil {
		return x.res, fmt.Errorf("introspect %s: %w", x.target, err)
	}
	schemaExists := true
	if cur == nil {
		n, err := readInt(ctx, conn.Conn(), warehouse.SchemaExists(a.cfg.Dialect, x.tgt.Schema))
		if err != nil {
			return x.res, fmt.Errorf("look up schema of %s: %w", x.target, err)
		}
		schemaExists = n > 0
	}
	attrs := func() (map[string]colAttrs, error) { return readAttrs(ctx, conn.Conn(), x.tgt) }
	p, err := x.plan(folded, cur, schemaExists, attrs)
	if err != nil {
		return x.res, err
	}
	if err := x.planSnapshot(p, cur); err != nil {
		return x.res, err
	}
	if err := x.stage(ctx, p); err != nil {
		return x.res, err
	}
	if err := x.requestSnapshot(ctx, folded.Unapplied); err != nil {
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
	if err := x.transact(ctx, conn.Conn(), p, st); err != nil {
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

// settle copies the selection into the result: what is held, what the
// state is after the window.
func (x *job) settle(st appliedState) {
	s := &x.sel
	x.res.Replays = s.replays
	x.res.Changes = len(s.accepted)
	x.res.Held = s.held
	slices.Sort(x.res.Held)
	x.res.WaitFor, x.res.HeldAt, x.res.Partial = s.waitFor, s.heldAt, s.partial
	x.res.Position, x.res.LegacySeq = st.applied, st.legacy
	for _, a := range s.accepted {
		if t := a.msg.Meta.CommitTime; t.After(x.res.LastCommit) {
			x.res.LastCommit = t
		}
	}
}

// changes are the accepted messages as fold reads them.
func (x *job) changes() ([]fold.Change, error) {
	changes := make([]fold.Change, 0, len(x.sel.accepted))
	for _, a := range x.sel.accepted {
		m := a.msg
		if a.rec == &m.Record && m.RecordErr != nil {
			return nil, x.unparseable(m, m.RecordErr)
		}
		switch a.rec.Kind {
		case testdecoding.KindInsert, testdecoding.KindUpdate, testdecoding.KindDelete, testdecoding.KindTruncate:
		default:
			continue
		}
		c := fold.Change{Seq: m.Seq, LSN: m.Meta.LSN, Record: a.rec, Keyless: x.keyless(m, a.rec)}
		if e := m.Meta.Extra; e != nil && (e.Missing != nil || e.Partition != nil) {
			c.Extra = &fold.Extra{Missing: e.Missing, Partition: e.Partition}
		}
		changes = append(changes, c)
	}
	return changes, nil
}

// requestSnapshot records that the table needs a snapshot when changes of
// the window cannot be applied, before the window commits.
func (x *job) requestSnapshot(ctx context.Context, unapplied []*fold.Change) error {
	if len(unapplied) == 0 {
		return nil
	}
	first, last := unapplied[0].LSN, unapplied[len(unapplied)-1].LSN
	reason := fmt.Sprintf("%d UPDATE/DELETE changes without a key or old row (the table had no primary key when capture read them)", len(unapplied))
	if x.a.snaps == nil {
		return fmt.Errorf("request a snapshot of %s: no snapshot request store", x.w.Table)
	}
	if err := x.a.snaps.Request(ctx, x.w.Table, reason, first, last); err != nil {
		return fmt.Errorf("request a snapshot of %s: %w", x.w.Table, err)
	}
	x.res.Unapplied["no-key"] += len(unapplied)
	x.log.Error("changes cannot be applied without a key; requested a snapshot of the table",
		"lsn", first+".."+last, "changes", len(unapplied), "reason", reason)
	return nil
}

// classify turns a warehouse error into a ParkError when it is permanent.
func (x *job) classify(action string, err error) error {
	err = warehouse.Detailed(err)
	if warehouse.Permanent(err) {
		return x.park(fmt.Sprintf("%s: %v", action, err), err)
	}
	return fmt.Errorf("%s on %s: %w", action, x.target, err)
}

// keySpec decides the window's key columns.
func (x *job) keySpec() keySpec {
	var keys []string
	source := ""
	for i := len(x.sel.accepted) - 1; i >= 0; i-- {
		m := x.sel.accepted[i].msg.Meta
		if source == "" && m.KeySource != "" && m.KeySource != walheader.KeySourceNone {
			source = m.KeySource
		}
		if len(m.Keys) > 0 {
			keys, source = m.Keys, m.KeySource
			break
		}
	}
	if source == walheader.KeySourceReplicaIdentityFull {
		return keySpec{KeySpec: fold.KeySpec{Full: true}}
	}
	if len(keys) > 0 {
		return keySpec{KeySpec: fold.KeySpec{Columns: keys}, Primary: source == walheader.KeySourcePrimaryKey}
	}
	if k := x.configuredKeys(); len(k) > 0 {
		return keySpec{KeySpec: fold.KeySpec{Columns: k}}
	}
	return keySpec{KeySpec: fold.KeySpec{Columns: []string{defaultKey}}, Default: true}
}

func (x *job) configuredKeys() []string {
	return x.a.cfg.TableKeys[x.w.Table.Schema+"."+x.w.Table.Name]
}

// defaultKey is the key column assumed when nothing says otherwise.
const defaultKey = "id"

// keyless reports whether a change cannot be keyed: capture read its table
// without a key and none is configured, or only the "id" default applies
// and the change has no such column.
func (x *job) keyless(m *Msg, rec *fold.Record) bool {
	if len(m.Meta.Keys) > 0 || m.Meta.KeySource == walheader.KeySourceReplicaIdentityFull || len(x.configuredKeys()) > 0 {
		return false
	}
	if m.Meta.KeySource == walheader.KeySourceNone {
		return true
	}
	if !x.spec.Default || rec.Kind == testdecoding.KindTruncate {
		return false
	}
	for _, c := range rec.Columns {
		if c.Name == defaultKey {
			return false
		}
	}
	return true
}

type keySpec struct {
	fold.KeySpec
	Default bool // the "id" fallback
	Primary bool // the source table's primary key
}

// readInt reads one integer (extended protocol); no row reads 0.
func readInt(ctx context.Context, q sqlReader, sql string) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, sql, pgx.QueryExecModeExec).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

// sqlReader is a connection or a transaction.
type sqlReader interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	_ sqlReader = (*pgx.Conn)(nil)
	_ sqlReader = (pgx.Tx)(nil)
)

// posInts is p as the state table's two BIGINT columns.
func posInts(p walheader.Pos) (base, index int64, err error) {
	if p.Base > math.MaxInt64 || p.Index > math.MaxInt64 {
		return 0, 0, fmt.Errorf("position %s does not fit the state table's BIGINT columns", p)
	}
	return int64(p.Base), int64(p.Index), nil
}

// introspect returns the target's columns, nil when the table is missing.
func introspect(ctx context.Context, q sqlReader, d warehouse.Dialect, t warehouse.Table) ([]warehouse.Column, error) {
	rows, err := q.Query(ctx, warehouse.Columns(d, t), pgx.QueryExecModeExec)
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
