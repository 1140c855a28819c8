package change

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/capture/internal/batch"
	"github.com/redms/redms/services/capture/internal/catalog"
	"github.com/redms/redms/services/capture/internal/selection"
)

// Resolver tells what the source knows about tables.
type Resolver interface {
	Resolve(ctx context.Context, t catalog.Name) (catalog.Info, error)
	// Partition says which rows of their root a TRUNCATE of tables (all
	// partitions of one root) removed: nil for every row.
	Partition(ctx context.Context, tables []catalog.Name) (*walheader.Partition, error)
}

var (
	_ Resolver = catalog.Live{}
	_ Resolver = catalog.Static{}
)

// Table is what the messages of one source table carry.
type Table struct {
	Name     catalog.Name
	Subject  string
	Label    string // root schema.table, unquoted: the metric label
	Selected bool
	Keys     string // JSON array
	Source   string // key source
	// Own reports that the table publishes on its own subject: it is no
	// leaf partition and was not folded by REDMS_PARTITION_SUFFIX_REGEXP.
	Own bool
	// Folded reports that REDMS_PARTITION_SUFFIX_REGEXP folded the table
	// into another's subject.
	Folded bool

	columns []string // column names of the last INSERT/UPDATE seen
	keyless bool     // no key: look it up again (Tables.RecheckKeyless)
	checked time.Time
	txn     uint64 // the transaction of the last change seen

	// headers are shared by every change of the table (never mutated).
	headers *batch.Headers
	// leaf is test_decoding's name of the table unless it is Own.
	leaf string
	// subject numbers positions on the table's subject (shared by every
	// table publishing on it).
	subject *subjectIndex
}

// subjectIndex numbers the change records on one subject: next is the
// next index within epoch (a transaction, or a --stdin run).
type subjectIndex struct {
	epoch, next uint64
}

// TablesConfig says how Tables resolves.
type TablesConfig struct {
	DB       string // subject database token
	Resolver Resolver
	Filter   selection.Filter
	Suffix   selection.Suffix
	// RecheckKeyless is how long a table whose lookup found no key is
	// trusted: its next transaction after that looks it up again, so a key
	// added after the table was loaded (pgbench -i, pg_restore) is used
	// from then on. 0 never looks again.
	RecheckKeyless time.Duration
	Log            *slog.Logger
	Now            func() time.Time // time.Now when nil
}

// Tables caches what each source table's messages carry. A table is looked
// up at first sight, again when an INSERT or UPDATE shows another column
// set (an added, dropped or retyped column: Redms-Missing, Redms-Types
// change with it), and, while it has no key, at its first change of a
// transaction once RecheckKeyless passed.
type Tables struct {
	cfg      TablesConfig
	m        map[catalog.Name]*Table
	subjects map[string]*subjectIndex
}

// NewTables returns an empty cache.
func NewTables(cfg TablesConfig) *Tables {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Tables{cfg: cfg, m: map[catalog.Name]*Table{}, subjects: map[string]*subjectIndex{}}
}

// Get returns the entry of t for a change of transaction txn; cols are the
// columns of an INSERT or UPDATE (hasCols), which a changed set makes it
// look the table up again.
func (ts *Tables) Get(ctx context.Context, t testdecoding.Table, cols []testdecoding.Column, hasCols bool, txn uint64) (*Table, error) {
	name := catalog.Name{Schema: t.Schema, Table: t.Name}
	tbl := ts.m[name]
	switch {
	case tbl == nil:
	case hasCols && !sameColumns(tbl.columns, cols):
	case tbl.keyless && tbl.txn != txn && ts.cfg.RecheckKeyless > 0 && ts.cfg.Now().Sub(tbl.checked) >= ts.cfg.RecheckKeyless:
	default:
		tbl.txn = txn
		return tbl, nil
	}
	info, err := ts.cfg.Resolver.Resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	next := ts.entry(t, name, info)
	next.txn = txn
	switch {
	case hasCols:
		next.columns = columnNames(cols)
	case tbl != nil:
		next.columns = tbl.columns
	}
	if tbl != nil && tbl.keyless && !next.keyless {
		ts.cfg.Log.Info("table has a key now", "table", name.String(), "keys", next.Keys, "key_source", next.Source)
	}
	ts.m[name] = next
	return next, nil
}

func (ts *Tables) entry(t testdecoding.Table, name catalog.Name, info catalog.Info) *Table {
	root := info.Root
	if root == (catalog.Name{}) {
		root = name
	}
	folded := false
	if r, ok := ts.cfg.Suffix.Root(root.Table); ok {
		root.Table, folded = r, true
	}
	tbl := &Table{
		Name:     name,
		Subject:  subjectOf(ts.cfg.DB, root.Schema, root.Table),
		Keys:     walheader.EncodeKeys(info.Keys),
		Source:   info.KeySource,
		Label:    root.String(),
		Selected: ts.cfg.Filter.Selected(root.Schema, root.Table),
		Own:      root == name,
		Folded:   folded,
		keyless:  info.KeySource == catalog.SourceNone || info.KeySource == catalog.SourceConfig,
		checked:  ts.cfg.Now(),
	}
	tbl.headers = batch.NewHeaders(info.Keys, info.KeySource, info.Types, info.Missing)
	if !tbl.Own {
		tbl.leaf = t.String()
	}
	if tbl.subject = ts.subjects[tbl.Subject]; tbl.subject == nil {
		tbl.subject = &subjectIndex{}
		ts.subjects[tbl.Subject] = tbl.subject
	}
	ts.cfg.Log.Debug("table resolved", "table", name.String(), "subject", tbl.Subject, "keys", tbl.Keys,
		"key_source", tbl.Source, "selected", tbl.Selected, "types", info.Types, "missing", info.Missing)
	return tbl
}

// Partition is the Redms-Partition of one TRUNCATE record's tables that
// share a subject (entries, in the record's order); nil when they empty
// the whole subject's table.
func (ts *Tables) Partition(ctx context.Context, entries []*Table) (*walheader.Partition, error) {
	names := make([]catalog.Name, len(entries))
	for i, e := range entries {
		names[i] = e.Name
		if e.Folded {
			leaf := testdecoding.Table{Schema: e.Name.Schema, Name: e.Name.Table}.String()
			return &walheader.Partition{Leaf: leaf, Unbounded: fmt.Sprintf(
				"%s is folded into %s by REDMS_PARTITION_SUFFIX_REGEXP: no bound says which of its rows came from it", leaf, e.Label)}, nil
		}
	}
	if len(entries) == 1 && entries[0].Own {
		return nil, nil
	}
	p, err := ts.cfg.Resolver.Partition(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("truncate of %s: %w", entries[0].Label, err)
	}
	return p, nil
}

func sameColumns(names []string, cols []testdecoding.Column) bool {
	if len(names) != len(cols) {
		return false
	}
	for i := range cols {
		if names[i] != cols[i].Name {
			return false
		}
	}
	return true
}

func columnNames(cols []testdecoding.Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

func subjectOf(db, schema, table string) string {
	return subject.Subject(subject.Table{DB: db, Schema: schema, Name: table})
}
