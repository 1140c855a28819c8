// Package checksum builds the SQL redms-verify sends to the source and to
// the warehouse (docs/DESIGN.md §8): per key-hash bucket an
// order-independent checksum and count of the rows' canonical text, and the
// rows of the buckets that differ. Pure functions, pinned by exact-string
// tests.
//
// The canonical text of a row is the same on both sides for a row the loader
// wrote correctly: the source applies the value rules of docs/DESIGN.md §5
// (pkg/typemap: saturate, round, truncate, NULL) in SQL, the warehouse
// prints the target column. A text column is encoded as
// "<octet length>:<text>" — on Redshift as the MD5 of its text when its
// target type can hold more than LongColumn bytes (Redshift's VARCHAR and
// so MD5's argument end at 65535 bytes); any other column as it prints (it cannot
// hold "|"); NULL as "N". The row's hash is the hash of the encodings
// joined by "|", the key hash that of the key columns' encodings (of the
// whole row for a keyless table, which then compares as a multiset); a
// bucket is the key hash's first hex digits, so bisection refines a bucket
// by two more digits at a time. The hash is Postgres' 64-bit
// hashtextextended when both sides are Postgres, MD5 for Redshift.
//
// A bucket's checksum is its count and exact integer sums of its rows'
// hashes (see sums), so the order of rows never matters, and a changed,
// missing or extra row changes them except with probability about 2^-64.
// On Redshift STRTOL reads MD5's hex (a bit-string cast on the source), and
// the sums of 32-bit slices stay below 2^63 up to 2^31 rows a bucket.
//
// Decisions:
//   - Both sides are read with TimeZone UTC, DateStyle ISO, extra_float_digits
//     1, bytea_output hex (Postgres) — timestamptz and timetz print in UTC,
//     as the loader writes them.
//   - Booleans are encoded as t/f on both sides (Redshift cannot cast a
//     BOOLEAN to VARCHAR).
//   - Floats compare by their shortest text; a real Redshift may print a
//     DOUBLE PRECISION differently from Postgres (only the emulator, which
//     is Postgres underneath, is tested).
//   - SUPER columns are not compared (their text form has no stable order of
//     keys on Redshift); such a table is refused.
package checksum

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/redms/redms/pkg/typemap"
)

// LongColumn is the largest target length (bytes) a column's text enters
// the row text with; longer types enter as their MD5.
const LongColumn = 256

// Column is one source column and the warehouse type the loader makes of it.
type Column struct {
	Name string
	// Declared is the source type with its modifier (format_type), e.g.
	// "numeric(12,2)", "character(3)".
	Declared string
	Target   typemap.Target
	Key      bool
	// Missing is set when the warehouse table lacks the column: it reads
	// as NULL there.
	Missing bool
}

// Table is a source table and its warehouse target.
type Table struct {
	Schema, Name             string // source
	TargetSchema, TargetName string // warehouse
	Columns                  []Column
}

// Keyed reports whether the table has key columns; a keyless table is
// compared as a multiset of rows.
func (t Table) Keyed() bool {
	for _, c := range t.Columns {
		if c.Key {
			return true
		}
	}
	return false
}

// Ident quotes an identifier.
func Ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// Literal quotes a string literal for either dialect: on Redshift a
// backslash escapes, so it is doubled there and the Postgres side reads the
// literal as an E” string.
func Literal(d typemap.Dialect, s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if !strings.Contains(s, `\`) {
		return q
	}
	q = strings.ReplaceAll(q, `\`, `\\`)
	if d == typemap.Redshift {
		return q
	}
	return "E" + q
}

// Side says which database a statement is for.
type Side int

const (
	Source Side = iota
	Warehouse
)

// Session is what a read transaction runs first on a side.
func Session(side Side, d typemap.Dialect) []string {
	if side == Warehouse && d == typemap.Redshift {
		return []string{
			"SET enable_case_sensitive_identifier TO true",
			"SET timezone TO 'UTC'",
			"SET datestyle TO 'ISO, MDY'",
			"SET extra_float_digits TO 1",
		}
	}
	return []string{
		"SET LOCAL TimeZone = 'UTC'",
		"SET LOCAL DateStyle = 'ISO, MDY'",
		"SET LOCAL IntervalStyle = 'postgres'",
		"SET LOCAL bytea_output = 'hex'",
		"SET LOCAL extra_float_digits = 1",
	}
}

// Check refuses a table redms-verify cannot compare.
func Check(t Table) error {
	for _, c := range t.Columns {
		if c.Target.Kind == typemap.KindSuper {
			return fmt.Errorf("table %s.%s column %s: SUPER columns cannot be compared", t.Schema, t.Name, c.Name)
		}
	}
	return nil
}

// SourceValue is the canonical text of column c of a source row: its value
// after the value rules, printed as the warehouse prints the target type.
func SourceValue(c Column) string {
	q := Ident(c.Name)
	t := c.Target
	switch t.Kind {
	case typemap.KindSmallInt, typemap.KindInteger, typemap.KindBigInt, typemap.KindChar, typemap.KindTime:
		return q + "::text"
	case typemap.KindNumeric:
		m := maxNumeric(t)
		// GREATEST and LEAST skip NULLs: NULL is tested first.
		return fmt.Sprintf("CASE WHEN %s IS NULL OR %s = 'NaN' THEN NULL ELSE LEAST(GREATEST(round(%s, %d), -%s), %s)::numeric(%d,%d)::text END",
			q, q, q, t.Scale, m, m, t.Precision, t.Scale)
	case typemap.KindReal, typemap.KindDouble:
		return fmt.Sprintf("CASE WHEN %s IN ('Infinity', '-Infinity', 'NaN') THEN NULL ELSE %s::text END", q, q)
	case typemap.KindBoolean:
		return fmt.Sprintf("CASE WHEN %s THEN 't' WHEN NOT %s THEN 'f' END", q, q)
	case typemap.KindDate:
		return fmt.Sprintf("CASE WHEN NOT isfinite(%s) OR %s > '294276-12-31' THEN NULL ELSE %s::text END", q, q, q)
	case typemap.KindTimestamp, typemap.KindTimestampTZ:
		return fmt.Sprintf("CASE WHEN NOT isfinite(%s) THEN NULL ELSE %s::text END", q, q)
	case typemap.KindTimeTZ:
		return fmt.Sprintf("(%s AT TIME ZONE 'UTC')::text", q)
	case typemap.KindVarbyte:
		return fmt.Sprintf("CASE WHEN octet_length(%s) = 0 THEN NULL ELSE encode(substring(%s FROM 1 FOR %d), 'hex') END", q, q, t.Length)
	}
	// VARCHAR: the output function's text, cut to the target's bytes. A
	// cast to text is that for text, varchar and json; format keeps
	// char(n)'s padding, which the cast strips, and is the output function
	// for every other type (it makes NULL '', so NULL is tested first).
	v := fmt.Sprintf("CASE WHEN %s IS NULL THEN NULL ELSE format('%%s', %s) END", q, q)
	switch base, _, _ := strings.Cut(c.Declared, "("); base {
	case "text", "character varying", "json", "jsonb":
		v = q + "::text"
	}
	if fitsAlways(c) {
		return v
	}
	return truncate(v, t.Length)
}

// fitsAlways reports whether every value of the source type fits the
// target VARCHAR: n characters of varchar(n)/char(n) take at most 4n bytes.
func fitsAlways(c Column) bool {
	base, n := c.Declared, 0
	if i := strings.IndexByte(base, '('); i >= 0 && strings.HasSuffix(base, ")") {
		if _, err := fmt.Sscanf(base[i:], "(%d)", &n); err != nil {
			return false
		}
		base = base[:i]
	}
	switch base {
	case "character varying", "character":
		return n > 0 && 4*n <= c.Target.Length
	}
	return false
}

// truncate cuts text v to at most n bytes at a UTF-8 boundary (typemap's
// TruncateUTF8): the cut moves back over continuation bytes (10xxxxxx), at
// most three.
func truncate(v string, n int) string {
	b := fmt.Sprintf("convert_to(%s, 'UTF8')", v)
	cut := "CASE"
	for back := 0; back < 3; back++ {
		cut += fmt.Sprintf(" WHEN get_byte(%s, %d) & 192 <> 128 THEN %d", b, n-back, n-back)
	}
	cut += fmt.Sprintf(" ELSE %d END", n-3)
	return fmt.Sprintf("CASE WHEN octet_length(%s) <= %d THEN %s ELSE convert_from(substring(%s FROM 1 FOR %s), 'UTF8') END", v, n, v, b, cut)
}

// maxNumeric is the largest magnitude of a target NUMERIC as a literal:
// 10^p - 1 units of 10^-s, and at most the 64-bit range for p <= 19
// (typemap's saturation).
func maxNumeric(t typemap.Target) string {
	digits := strings.Repeat("9", t.Precision)
	if t.Precision == 19 {
		digits = "9223372036854775807"
	}
	if t.Scale == 0 {
		return digits
	}
	if t.Scale >= len(digits) {
		return "0." + strings.Repeat("0", t.Scale-len(digits)) + digits
	}
	return digits[:len(digits)-t.Scale] + "." + digits[len(digits)-t.Scale:]
}

// WarehouseValue is the canonical text of column c of a warehouse row.
func WarehouseValue(d typemap.Dialect, c Column) string {
	if c.Missing {
		return "CAST(NULL AS VARCHAR)"
	}
	q := Ident(c.Name)
	switch c.Target.Kind {
	case typemap.KindVarchar:
		return q
	case typemap.KindBoolean:
		return fmt.Sprintf("CASE WHEN %s THEN 't' WHEN NOT %s THEN 'f' END", q, q)
	case typemap.KindVarbyte:
		if d == typemap.Redshift {
			return fmt.Sprintf("FROM_VARBYTE(%s, 'hex')", q)
		}
		return q
	}
	return fmt.Sprintf("CAST(%s AS VARCHAR)", q)
}

// encode is a column's part of the row text. Only text can hold the
// separator "|" or be "N", so only text is length-prefixed (or hashed when
// long); numbers, times, booleans and hex enter as they print.
func encode(d typemap.Dialect, c Column, v string) string {
	long := d == typemap.Redshift && c.Target.Length > LongColumn
	switch {
	case c.Target.Kind == typemap.KindVarchar && long:
		return fmt.Sprintf("COALESCE(MD5(%s), 'N')", v)
	case c.Target.Kind == typemap.KindVarchar:
		return fmt.Sprintf("COALESCE(CAST(OCTET_LENGTH(%s) AS VARCHAR) || ':' || %s, 'N')", v, v)
	case c.Target.Kind == typemap.KindVarbyte && long:
		return fmt.Sprintf("COALESCE(MD5(%s), 'N')", v)
	}
	return fmt.Sprintf("COALESCE(%s, 'N')", v)
}

// values is the canonical text expression of every column on a side.
func values(side Side, d typemap.Dialect, t Table) []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		if side == Source {
			out[i] = SourceValue(c)
		} else {
			out[i] = WarehouseValue(d, c)
		}
	}
	return out
}

// MaxDigits is how many hex digits of the key hash buckets can split to:
// the 64 bits of hashtextextended for a Postgres warehouse, MD5's 128 for
// Redshift.
func MaxDigits(d typemap.Dialect) int {
	if d == typemap.Postgres {
		return 16
	}
	return 32
}

// hashOf is the hash of a text: on a Postgres warehouse both sides are
// Postgres and use its 64-bit hashtextextended (a third of MD5's cost, and
// stable: hash partitioning relies on it); Redshift has only MD5 of the
// two. The text is hashed under collation "C": hashing needs a collation,
// and text of columns under different ones has none.
func hashOf(d typemap.Dialect, text string) string {
	if d == typemap.Postgres {
		return "hashtextextended((" + text + `) COLLATE "C", 0)`
	}
	return "MD5(" + text + ")"
}

// hashes is the inner select of every statement: the key hash kh, the row
// hash h and, when withValues, each column's canonical text v0, v1, …
func hashes(side Side, d typemap.Dialect, t Table, withValues bool) string {
	vals := values(side, d, t)
	var row, key []string
	for i, c := range t.Columns {
		e := encode(d, c, vals[i])
		row = append(row, e)
		if c.Key {
			key = append(key, e)
		}
	}
	rowHash := hashOf(d, strings.Join(row, " || '|' || "))
	var sel []string
	if t.Keyed() {
		sel = append(sel, hashOf(d, strings.Join(key, " || '|' || "))+" AS kh", rowHash+" AS h")
	} else {
		sel = append(sel, rowHash+" AS h")
	}
	if withValues {
		for i, v := range vals {
			sel = append(sel, fmt.Sprintf("%s AS v%d", v, i))
		}
	}
	rel := Ident(t.Schema) + "." + Ident(t.Name)
	if side == Warehouse {
		rel = Ident(t.TargetSchema) + "." + Ident(t.TargetName)
	}
	inner := "SELECT " + strings.Join(sel, ", ") + " FROM " + rel
	if !t.Keyed() {
		inner = "SELECT h AS kh, r0.* FROM (" + inner + ") r0"
	}
	if side == Source || d == typemap.Postgres {
		// Postgres would pull the subquery up and compute h once for each
		// reference to it; OFFSET 0 keeps it a subquery, computed once a row.
		inner += " OFFSET 0"
	}
	return inner
}

// sums are the two checksum columns of a bucket, as text. For a Postgres
// warehouse the exact sum of the 64-bit row hashes (SUM of bigint is
// numeric there) and an empty string; for Redshift, where SUM of BIGINT
// may overflow, two sums of 32-bit slices of the MD5, read by STRTOL on
// Redshift and by a bit-string cast on the source.
func sums(side Side, d typemap.Dialect) string {
	if d == typemap.Postgres {
		return "CAST(SUM(h) AS VARCHAR), ''"
	}
	slice := func(from int) string {
		if side == Warehouse {
			return fmt.Sprintf("STRTOL(SUBSTRING(h, %d, 8), 16)", from)
		}
		return fmt.Sprintf("('x' || SUBSTRING(h, %d, 8))::bit(32)::bigint", from)
	}
	return fmt.Sprintf("CAST(SUM(%s) AS VARCHAR), CAST(SUM(%s) AS VARCHAR)", slice(1), slice(9))
}

// bucketOf is the first digits hex digits of the key hash: a prefix of the
// MD5's hex, or the top 4×digits bits of the 64-bit hash (an integer; the
// caller formats it).
func bucketOf(d typemap.Dialect, digits int) string {
	if d != typemap.Postgres {
		return fmt.Sprintf("SUBSTRING(kh, 1, %d)", digits)
	}
	if digits >= 16 {
		return "kh"
	}
	return fmt.Sprintf("((kh >> %d) & %d)", 64-4*digits, uint64(1)<<(4*digits)-1)
}

// hexOf renders a bucket of bucketOf as its hex digits.
func hexOf(d typemap.Dialect, expr string, digits int) string {
	if d != typemap.Postgres {
		return expr
	}
	return fmt.Sprintf("lpad(to_hex(%s), %d, '0')", expr, digits)
}

func prefixFilter(d typemap.Dialect, parent int, prefixes []string) string {
	if len(prefixes) == 0 {
		return ""
	}
	lits := make([]string, len(prefixes))
	for i, p := range prefixes {
		if d == typemap.Postgres {
			// p is parent hex digits of a 64-bit hash; below 16 they fit
			// an int64 once shifted down.
			v, _ := strconv.ParseUint(p, 16, 64)
			lits[i] = strconv.FormatInt(int64(v), 10)
		} else {
			lits[i] = Literal(d, p)
		}
	}
	return fmt.Sprintf(" WHERE %s IN (%s)", bucketOf(d, parent), strings.Join(lits, ", "))
}

// Buckets checksums the rows of t on a side per bucket of digits hex
// digits of the key hash, only inside the buckets prefixes (of digits-2
// digits) when prefixes is not empty: bucket (hex), count, and the two
// sums as text, ordered by bucket.
func Buckets(side Side, d typemap.Dialect, t Table, digits int, prefixes []string) string {
	parent := 0
	if len(prefixes) > 0 {
		parent = len(prefixes[0])
	}
	b := bucketOf(d, digits)
	return fmt.Sprintf("SELECT %s AS b, COUNT(*), %s FROM (%s) r%s GROUP BY %s ORDER BY 1",
		hexOf(d, b, digits), sums(side, d), hashes(side, d, t, false), prefixFilter(d, parent, prefixes), b)
}

// Rows reads the rows of t in the buckets prefixes on a side: key hash
// (hex), row hash (text) and each column's canonical text.
func Rows(side Side, d typemap.Dialect, t Table, prefixes []string) string {
	cols := "*"
	if d == typemap.Postgres {
		cols = "lpad(to_hex(kh), 16, '0'), CAST(h AS VARCHAR)"
		for i := range t.Columns {
			cols += fmt.Sprintf(", v%d", i)
		}
	}
	return fmt.Sprintf("SELECT %s FROM (%s) r%s", cols, hashes(side, d, t, true), prefixFilter(d, len(prefixes[0]), prefixes))
}

// CurrentLSN is read first in the source's read transaction: the source
// position the read is at (its snapshot sees no commit after it).
const CurrentLSN = "SELECT pg_current_wal_lsn()::text"
