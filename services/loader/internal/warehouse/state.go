package warehouse

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
	"unicode/utf8"
)

// State tables (docs/DESIGN.md §5): one per target table, in the state
// schema, named by StateTable. It holds one row: the source table (database,
// schema and table of its subject) that feeds the target, and the source
// position applied last. Its primary key is the target's quoted name, so a
// second source racing to claim the target collides on Postgres instead of
// inserting a second row (Redshift does not enforce keys: a second row, if
// one appears, is read and refused the same way). One table per target and
// not one shared table because Redshift's write locks are per table: a
// shared table would serialize every table's windows.
//
// No ON CONFLICT (Redshift lacks it): the window's transaction locks the
// state table and the target (Lock), inserts the row when the table has
// none, reads it, and advances it.

// StatePrefix starts every state table's name.
const StatePrefix = "redms_state_"

// LegacyStateTable is the watermark table of loaders before source
// positions: one row per target with the last applied stream sequence.
const LegacyStateTable = "redms_applied"

// StateTable is the state table of target t in schema:
// redms_state_<8 hex of SHA-256 of t's quoted name>_<t's name, cut>, at most
// MaxIdentBytes long. The hash keeps targets apart whose names agree in
// their first bytes or differ only in schema.
func StateTable(schema string, t Table) Table {
	sum := sha256.Sum256([]byte(t.SQL()))
	name := StatePrefix + hex.EncodeToString(sum[:4]) + "_"
	rest := t.Name
	for len(name)+len(rest) > MaxIdentBytes {
		_, size := utf8.DecodeLastRuneInString(rest)
		rest = rest[:len(rest)-size]
	}
	return Table{Schema: schema, Name: name + rest}
}

// Source names the source table that feeds a target: the tokens of its
// subject.
type Source struct{ DB, Schema, Table string }

func (s Source) String() string { return s.DB + "." + s.Schema + "." + s.Table }

// CreateStateTable creates a state table when missing.
func CreateStateTable(s Table) string {
	return "CREATE TABLE IF NOT EXISTS " + s.SQL() + " (target VARCHAR(512) NOT NULL," +
		" source_db VARCHAR(512) NOT NULL, source_schema VARCHAR(512) NOT NULL, source_table VARCHAR(512) NOT NULL," +
		" pos_base BIGINT NOT NULL, pos_index BIGINT NOT NULL, pos VARCHAR(64) NOT NULL, legacy_seq BIGINT NOT NULL," +
		" last_lsn VARCHAR(32) NOT NULL, applied_at TIMESTAMP NOT NULL, PRIMARY KEY (target))"
}

func timeLiteral(d Dialect, t time.Time) string {
	return Literal(d, t.UTC().Format("2006-01-02 15:04:05.999999"))
}

// ClaimState inserts src's row, at position zero, into a state table that
// has no row.
func ClaimState(d Dialect, s Table, target string, src Source, now time.Time) string {
	return fmt.Sprintf("INSERT INTO %s (target, source_db, source_schema, source_table, pos_base, pos_index, pos, legacy_seq, last_lsn, applied_at)"+
		" SELECT %s, %s, %s, %s, 0, 0, '', 0, '', %s WHERE NOT EXISTS (SELECT 1 FROM %s)",
		s.SQL(), Literal(d, target), Literal(d, src.DB), Literal(d, src.Schema), Literal(d, src.Table), timeLiteral(d, now), s.SQL())
}

// ReadState reads every row of a state table: one, unless two sources
// claimed the target at once where keys are not enforced; then the first by
// source name owns it, a stable choice. Inside the window's transaction the
// table is locked (Lock) first.
func ReadState(s Table) string {
	return "SELECT source_db, source_schema, source_table, pos_base, pos_index, legacy_seq FROM " + s.SQL() + " ORDER BY source_db, source_schema, source_table"
}

// AdvanceState records src's applied position (base, index, its text form),
// the legacy stream sequence fence and the LSN of the last change applied.
func AdvanceState(d Dialect, s Table, src Source, base, index int64, pos string, legacySeq int64, lsn string, now time.Time) string {
	return fmt.Sprintf("UPDATE %s SET pos_base = %d, pos_index = %d, pos = %s, legacy_seq = %d, last_lsn = %s, applied_at = %s"+
		" WHERE source_db = %s AND source_schema = %s AND source_table = %s",
		s.SQL(), base, index, Literal(d, pos), legacySeq, Literal(d, lsn), timeLiteral(d, now),
		Literal(d, src.DB), Literal(d, src.Schema), Literal(d, src.Table))
}

// LegacyWatermark reads the last stream sequence a loader before source
// positions applied to target (its quoted qualified name).
func LegacyWatermark(d Dialect, schema, target string) string {
	return "SELECT last_seq FROM " + Table{Schema: schema, Name: LegacyStateTable}.SQL() + " WHERE target = " + Literal(d, target)
}
