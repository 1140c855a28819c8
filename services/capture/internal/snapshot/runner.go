package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/snaprequest"
	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/capture/internal/catalog"
)

// Config says how snapshots are read.
type Config struct {
	DB          string // subject database token
	ChunkRows   int    // rows a chunk reads at most
	Rate        int    // rows per second at most; 0 = unlimited
	FullMaxRows int64  // a keyless table is replaced whole up to this many rows
	PartRecords int    // records of a message (REDMS_BATCH_RECORDS)
	PartBytes   int    // body bytes of a message at most
	Poll        time.Duration
	// Selected says whether capture publishes a table; Include and
	// Exclude are its patterns (REDMS_INCLUDE_TABLES, _EXCLUDE_TABLES).
	Selected         func(schema, table string) bool
	Include, Exclude string
	// Active says whether this capture reads the slot now (nil: always).
	// A standby takes no request and resumes nothing: the chunks are
	// spliced into the stream by the capture that reads the WAL, so a
	// standby that took a request would leave it waiting for good.
	Active func() bool
}

// Metrics receives progress; any field may be nil.
type Metrics struct {
	Rows      func(table string, n int)
	Remaining func(table string, n int64)
}

// Resolver is the catalog lookup capture's table cache uses (catalog.Live).
type Resolver interface {
	Resolve(ctx context.Context, t catalog.Name) (catalog.Info, error)
}

// Runner performs snapshot requests: it takes them from KV, reads the
// table chunk by chunk between watermarks, and records its progress so a
// restarted capture resumes after the last chunk published.
type Runner struct {
	cfg      Config
	q        Querier
	res      Resolver
	coord    *Coordinator
	acked    func() uint64
	requests jetstream.KeyValue
	status   jetstream.KeyValue
	log      *slog.Logger
	m        Metrics
}

// NewRunner returns a runner; acked is the publisher's confirmed position.
func NewRunner(cfg Config, q Querier, res Resolver, coord *Coordinator, acked func() uint64, requests, status jetstream.KeyValue, log *slog.Logger, m Metrics) *Runner {
	if cfg.ChunkRows < 1 {
		cfg.ChunkRows = 10000
	}
	if cfg.PartRecords < 1 {
		cfg.PartRecords = 1
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Selected == nil {
		cfg.Selected = func(string, string) bool { return true }
	}
	return &Runner{cfg: cfg, q: q, res: res, coord: coord, acked: acked, requests: requests, status: status, log: log, m: m}
}

// Key is a table's key in both buckets.
func (r *Runner) Key(schema, table string) string {
	return subject.KVKey(subject.Table{DB: r.cfg.DB, Schema: schema, Name: table})
}

// Run resumes the snapshots a killed capture left running, then performs
// requests as they come, until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	tick := time.NewTicker(r.cfg.Poll)
	defer tick.Stop()
	resumed := false
	for {
		if r.cfg.Active != nil && !r.cfg.Active() {
			resumed = false // the capture that had the slot may have moved on
		} else if !resumed {
			err := r.newlySelected(ctx)
			if err == nil {
				err = r.resume(ctx)
			}
			if err != nil {
				r.log.Warn("resume snapshots", "err", err)
			} else {
				resumed = true
			}
		}
		if resumed && (r.cfg.Active == nil || r.cfg.Active()) {
			if err := r.takeRequests(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("take snapshot requests", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (r *Runner) resume(ctx context.Context) error {
	all, err := snaprequest.ReadStatus(ctx, r.status)
	if err != nil {
		return err
	}
	for key, st := range all {
		if !st.Active() {
			continue
		}
		r.log.Info("resuming snapshot", "table", st.Table, "id", st.ID, "chunk", st.Chunk, "rows_done", st.RowsDone)
		if err := r.perform(ctx, key, st); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) takeRequests(ctx context.Context) error {
	keys, err := r.requests.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list %s: %w", snaprequest.RequestsBucket, err)
	}
	var pending []string
	for k := range keys.Keys() {
		pending = append(pending, k)
	}
	for _, key := range pending {
		e, err := r.requests.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read snapshot request %s: %w", key, err)
		}
		var req snaprequest.Request
		if err := json.Unmarshal(e.Value(), &req); err != nil {
			r.log.Error("snapshot request does not decode: deleted", "key", key, "err", err)
			_ = r.requests.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
			continue
		}
		now := time.Now().UTC()
		id := newToken()
		st := snaprequest.Status{ID: id, Table: req.Table, State: snaprequest.StateQueued, Reason: req.Reason, Where: req.Where,
			Ranges: req.Ranges, StartedAt: now, UpdatedAt: now}
		if req.ID != "" {
			st.RequestIDs = strings.Split(req.ID, ",")
		}
		if err := snaprequest.PutStatus(ctx, r.status, key, st); err != nil {
			return err
		}
		// Taken on: a request merged into it meanwhile stays for the next round.
		if err := r.requests.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
			r.log.Info("snapshot request changed while taken on: it runs again after this one", "table", req.Table)
		}
		r.log.Info("snapshot requested", "table", req.Table, "id", id, "reason", req.Reason, "requested_by", req.RequestedBy)
		if err := r.perform(ctx, key, st); err != nil {
			return err
		}
	}
	return nil
}

// errRefused marks a snapshot capture will not perform.
var errRefused = errors.New("refused")

// perform runs st to its end (or ctx's); the error is only for a failure
// to record progress or a stop.
func (r *Runner) perform(ctx context.Context, key string, st snaprequest.Status) error {
	err := r.chunks(ctx, key, &st)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	now := time.Now().UTC()
	st.UpdatedAt = now
	switch {
	case err == nil:
		st.State, st.FinishedAt = snaprequest.StateDone, &now
		r.log.Info("snapshot done", "table", st.Table, "id", st.ID, "rows", st.RowsDone, "chunks", st.Chunk, "last_pos", st.LastPos)
	case errors.Is(err, errRefused):
		st.State, st.Error, st.FinishedAt = snaprequest.StateRefused, err.Error(), &now
		r.log.Error("snapshot refused", "table", st.Table, "id", st.ID, "reason", err)
	default:
		st.State, st.Error, st.FinishedAt = snaprequest.StateFailed, err.Error(), &now
		r.log.Error("snapshot failed", "table", st.Table, "id", st.ID, "err", err)
	}
	return snaprequest.PutStatus(ctx, r.status, key, st)
}

// chunks reads the table chunk by chunk from st's cursor on.
func (r *Runner) chunks(ctx context.Context, key string, st *snaprequest.Status) error {
	schema, name, ok := strings.Cut(st.Table, ".")
	if !ok {
		return fmt.Errorf("%w: table %q is not schema.table", errRefused, st.Table)
	}
	info, err := r.retryResolve(ctx, catalog.Name{Schema: schema, Table: name})
	if err != nil {
		return err
	}
	if !info.Found {
		return fmt.Errorf("%w: table %s does not exist", errRefused, st.Table)
	}
	root := info.Root
	if root == (catalog.Name{}) {
		root = catalog.Name{Schema: schema, Table: name}
	}
	if root.String() != st.Table { // a partition's rows go to its root's target
		if info, err = r.retryResolve(ctx, root); err != nil {
			return err
		}
	}
	if !r.cfg.Selected(root.Schema, root.Table) {
		return fmt.Errorf("%w: %s is not published (REDMS_INCLUDE_TABLES/REDMS_EXCLUDE_TABLES)", errRefused, root)
	}
	t := testdecoding.Table{Schema: root.Schema, Name: root.Table}
	cols, err := readColumns(ctx, r.q, t)
	if err != nil {
		return err
	}
	var keys []int
	var keyCols []string
	keyed := info.Keys
	if info.KeySource == catalog.SourceReplicaIdentityFull {
		// The loader keeps such a table as a multiset (docs/DESIGN.md §4):
		// the whole row is no key, two equal rows share it, so ranges over
		// it cannot replace a part of the table. It is replaced whole.
		keyed = nil
	}
	for _, k := range keyed {
		i := indexColumn(cols, k)
		if i < 0 {
			return fmt.Errorf("%w: key column %q is not a column of %s", errRefused, k, t)
		}
		keys, keyCols = append(keys, i), append(keyCols, k)
		if !cols[i].sortsItself() {
			r.log.Warn("snapshot key column does not sort as the warehouse sorts it (a collation other than C, or a type compared there as text): "+
				"chunks are read in the warehouse's order, by its text under COLLATE \"C\", and each chunk scans the table; "+
				"an index on that expression makes them index scans",
				"table", t, "column", k, "order_by", cols[i].sort)
		}
	}
	// Key ranges (redms-verify --repair) are read one after the other, each
	// chunk replacing its part of the range; a keyless table is whole.
	ranges := st.Ranges
	if len(keys) == 0 {
		ranges = nil
	}
	for _, rg := range ranges {
		if (rg.From != nil && len(rg.From) != len(keys)) || (rg.To != nil && len(rg.To) != len(keys)) {
			return fmt.Errorf("%w: a requested key range of %s has bounds of %d and %d values, its key (%s) has %d columns",
				errRefused, t, len(rg.From), len(rg.To), strings.Join(keyCols, ", "), len(keys))
		}
	}
	if st.Range >= len(ranges) {
		st.Range = 0
	}
	if est, err := estimate(ctx, r.q, t); err == nil && len(ranges) == 0 {
		st.RowsEstimate = est
	}
	limit := r.cfg.ChunkRows
	if len(keys) == 0 { // replaced whole, in one chunk
		if st.RowsEstimate > r.cfg.FullMaxRows {
			return fmt.Errorf("%w: %s has no key and about %d rows, more than REDMS_SNAPSHOT_FULL_MAX_ROWS=%d replaced whole in one chunk; "+
				"give it a primary key (ALTER TABLE %s ADD PRIMARY KEY (...)) or name its key columns in REDMS_TABLE_KEYS", errRefused, t, st.RowsEstimate, r.cfg.FullMaxRows, t)
		}
		limit = int(r.cfg.FullMaxRows) + 1
		st.Cursor, st.Chunk = nil, 0
	}
	st.State = snaprequest.StateRunning
	sub := subject.Subject(subject.Table{DB: r.cfg.DB, Schema: root.Schema, Name: root.Table})
	started := time.Now()
	var done int64
	for {
		ch := &chunk{token: newToken(), subject: sub, table: t, id: st.ID, number: st.Chunk + 1, parts: r.cfg.PartRecords, partBytes: r.cfg.PartBytes, filter: st.Where != ""}
		if len(keys) > 0 {
			ch.keyCols = keyCols
		}
		cursor, upto := st.Cursor, walheader.Key(nil)
		if len(ranges) > 0 {
			rg := ranges[st.Range]
			if cursor == nil {
				cursor = rg.From
			}
			upto = rg.To
		}
		n, last, pos, err := r.chunk(ctx, ch, cols, keys, cursor, upto, st.Where, limit)
		if err != nil {
			return err
		}
		if len(keys) == 0 && n > int(r.cfg.FullMaxRows) {
			return fmt.Errorf("%w: %s has no key and more than REDMS_SNAPSHOT_FULL_MAX_ROWS=%d rows; "+
				"give it a primary key (ALTER TABLE %s ADD PRIMARY KEY (...)) or name its key columns in REDMS_TABLE_KEYS", errRefused, t, r.cfg.FullMaxRows, t)
		}
		st.Chunk++
		st.RowsDone += int64(n)
		st.Cursor = last
		st.LastPos = pos.String()
		st.UpdatedAt = time.Now().UTC()
		done += int64(n)
		if r.m.Rows != nil {
			r.m.Rows(root.String(), n)
		}
		if r.m.Remaining != nil {
			r.m.Remaining(root.String(), max(st.RowsEstimate-st.RowsDone, 0))
		}
		end := last == nil || len(keys) == 0
		if end && st.Range+1 < len(ranges) { // on to the next range
			st.Range++
			end = false
		}
		if !end {
			if err := snaprequest.PutStatus(ctx, r.status, key, *st); err != nil {
				return err
			}
		}
		if end {
			if r.m.Remaining != nil {
				r.m.Remaining(root.String(), 0)
			}
			return nil
		}
		if r.cfg.Rate > 0 { // rows per second, over the whole snapshot
			due := started.Add(time.Duration(float64(done) / float64(r.cfg.Rate) * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(wait):
				}
			}
		}
	}
}

// chunkTimeout is how long a chunk's watermarks may take to come through
// the stream before the chunk is read again.
const chunkTimeout = 30 * time.Second

// chunk reads and publishes one chunk, again until it goes through: n
// rows read, last the key of the last (nil: the table ended).
func (r *Runner) chunk(ctx context.Context, ch *chunk, cols []column, keys []int, cursor, upto walheader.Key, where string, limit int) (n int, last walheader.Key, pos walheader.Pos, err error) {
	for attempt := 1; ; attempt++ {
		n, last, pos, err = r.try(ctx, ch, cols, keys, cursor, upto, where, limit)
		if err == nil || ctx.Err() != nil {
			return n, last, pos, err
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return 0, nil, pos, err
		}
		wait := min(time.Duration(attempt)*200*time.Millisecond, 5*time.Second)
		r.log.Info("snapshot chunk read again", "table", ch.table.String(), "chunk", ch.number, "attempt", attempt, "reason", err, "backoff", wait)
		select {
		case <-ctx.Done():
			return 0, nil, pos, ctx.Err()
		case <-time.After(wait):
		}
		ch = &chunk{token: newToken(), subject: ch.subject, table: ch.table, keyCols: ch.keyCols, id: ch.id, number: ch.number, parts: ch.parts, partBytes: ch.partBytes, filter: ch.filter}
	}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// EmitSQL writes a non-transactional logical decoding message: decoded at
// its place in the WAL, between the transactions that committed before and
// after it.
const EmitSQL = "SELECT pg_logical_emit_message(false, $1, $2)::text"

func (r *Runner) emit(ctx context.Context, token string, high bool) error {
	b, _ := json.Marshal(mark{Token: token, High: high})
	var lsn string
	if err := r.q.QueryRow(ctx, EmitSQL, Prefix, string(b)).Scan(&lsn); err != nil {
		return fmt.Errorf("write watermark: %w", err)
	}
	return nil
}

func (r *Runner) try(ctx context.Context, ch *chunk, cols []column, keys []int, cursor, upto walheader.Key, where string, limit int) (int, walheader.Key, walheader.Pos, error) {
	r.coord.register(ch)
	defer r.coord.forget(ch)
	if err := r.emit(ctx, ch.token, false); err != nil {
		return 0, nil, walheader.Pos{}, err
	}
	rows, last, vis, err := readChunk(ctx, r.q, ch.table, cols, keys, cursor, upto, where, limit)
	if err != nil {
		var pe interface{ SQLState() string }
		if errors.As(err, &pe) && strings.HasPrefix(pe.SQLState(), "42") { // a --where that does not compile
			return 0, nil, walheader.Pos{}, &permanentError{err}
		}
		return 0, nil, walheader.Pos{}, err
	}
	// The chunk replaces (cursor, its last row] while more follow, else
	// (cursor, the range's end]: nil, the table's end.
	to := last
	if len(rows) < limit {
		last, to = nil, upto
	}
	r.coord.setRows(ch, rows, cursor, to, vis)
	if err := r.emit(ctx, ch.token, true); err != nil {
		return 0, nil, walheader.Pos{}, err
	}
	timer := time.NewTimer(chunkTimeout)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return 0, nil, walheader.Pos{}, ctx.Err()
	case <-timer.C:
		return 0, nil, walheader.Pos{}, errors.New("the chunk's watermarks did not come through the replication stream in time")
	case <-ch.done:
	}
	dirty, commit, pos := r.coord.state(ch)
	if dirty != "" {
		return 0, nil, walheader.Pos{}, errors.New(dirty)
	}
	// In the stream once the publisher confirmed past its transaction.
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for r.acked() < commit {
		select {
		case <-ctx.Done():
			return 0, nil, walheader.Pos{}, ctx.Err()
		case <-poll.C:
		}
	}
	return len(rows), last, pos, nil
}

func indexColumn(cols []column, name string) int {
	for i, c := range cols {
		if c.name == name {
			return i
		}
	}
	return -1
}

func (r *Runner) retryResolve(ctx context.Context, n catalog.Name) (catalog.Info, error) {
	var info catalog.Info
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if info, err = r.res.Resolve(ctx, n); err == nil || ctx.Err() != nil {
			return info, err
		}
		select {
		case <-ctx.Done():
			return info, ctx.Err()
		case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
		}
	}
	return info, fmt.Errorf("look up %s: %w", n, err)
}

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
