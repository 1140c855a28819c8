// Package warehouse builds every SQL statement the loader sends to the
// warehouse, for both dialects, as pure functions pinned by exact-string
// tests. Identifiers are quoted by Ident, string literals by Literal; nothing
// else puts text into SQL.
//
// Decisions:
//   - Names: the target table is <TargetSchema or the source schema>.<source
//     table>, names kept exactly. On Redshift every session first runs
//     SET enable_case_sensitive_identifier TO true, so quoted identifiers keep
//     their case as in Postgres instead of folding to lower case; two source
//     tables that differ only in case stay two tables. An identifier longer
//     than 127 bytes (Redshift's limit) is refused (the window parks).
//   - Literals: Redshift treats a backslash in a string literal as an escape,
//     so Literal doubles backslashes for Redshift; Postgres has
//     standard_conforming_strings and only quotes are doubled.
//   - Staging tables are session temp tables with positional column names
//     (k0.. for match keys, c0.. for values), created and dropped inside the
//     window's transaction.
//   - TRUNCATE is never sent: it commits the open transaction on Redshift.
//     Emptying a table is DELETE FROM.
//   - Retyping a column: Postgres ALTER COLUMN … TYPE … USING; Redshift can
//     only widen a VARCHAR with ALTER COLUMN (outside a transaction, before the
//     window), any other change is add column, copy with a cast, drop, rename
//     — inside the window's transaction.
//   - Watermark: table redms_applied in the state schema, one row per target
//     (the target's quoted qualified name), see docs/CONTRACTS.md. No
//     ON CONFLICT (Redshift lacks it): the row is inserted when missing, then
//     read (FOR UPDATE on Postgres; Redshift's serializable isolation fences
//     concurrent writers), then updated.
package warehouse

import (
	"fmt"
	"strings"
	"time"

	"github.com/redms/redms/pkg/typemap"
)

// Dialect is the warehouse flavour.
type Dialect = typemap.Dialect

// The dialects.
const (
	Postgres = typemap.Postgres
	Redshift = typemap.Redshift
)

// MaxIdentBytes is Redshift's identifier limit.
const MaxIdentBytes = 127

// StateTable is the watermark table's name.
const StateTable = "redms_applied"

// Ident quotes an identifier.
func Ident(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// Literal quotes a string literal for the dialect.
func Literal(d Dialect, s string) string {
	s = strings.ReplaceAll(s, `'`, `''`)
	if d == Redshift {
		s = strings.ReplaceAll(s, `\`, `\\`)
	}
	return "'" + s + "'"
}

// CheckIdent refuses names the warehouse cannot hold.
func CheckIdent(name string) error {
	if len(name) > MaxIdentBytes {
		return fmt.Errorf("identifier %q is %d bytes, more than the warehouse's %d", name, len(name), MaxIdentBytes)
	}
	if name == "" {
		return fmt.Errorf("empty identifier")
	}
	return nil
}

// Table is a qualified warehouse table.
type Table struct{ Schema, Name string }

// SQL is the quoted qualified name.
func (t Table) SQL() string { return Ident(t.Schema) + "." + Ident(t.Name) }

// Column is a warehouse column.
type Column struct {
	Name string
	Type typemap.Target
}

// SetCaseSensitive keeps identifier case on a Redshift session.
func SetCaseSensitive() string { return "SET enable_case_sensitive_identifier TO true" }

// SchemaExists counts the schemas of that name (0 or 1). The loader asks
// before creating one: CREATE SCHEMA needs a privilege the loader's user may
// lack on a schema that exists.
func SchemaExists(d Dialect, schema string) string {
	return "SELECT COUNT(*) FROM pg_namespace WHERE nspname = " + Literal(d, schema)
}

// CreateSchema creates a schema when missing.
func CreateSchema(schema string) string {
	return "CREATE SCHEMA IF NOT EXISTS " + Ident(schema)
}

// CreateTable creates a target table when missing, every length explicit.
func CreateTable(t Table, cols []Column) string {
	defs := make([]string, len(cols))
	for i, c := range cols {
		defs[i] = Ident(c.Name) + " " + c.Type.SQL
	}
	return "CREATE TABLE IF NOT EXISTS " + t.SQL() + " (" + strings.Join(defs, ", ") + ")"
}

// AddColumn adds a column.
func AddColumn(t Table, c Column) string {
	return "ALTER TABLE " + t.SQL() + " ADD COLUMN " + Ident(c.Name) + " " + c.Type.SQL
}

// DropColumn drops a column.
func DropColumn(t Table, name string) string {
	return "ALTER TABLE " + t.SQL() + " DROP COLUMN " + Ident(name)
}

// WidenVarchar widens a VARCHAR column in place. Redshift runs it only
// outside a transaction block.
func WidenVarchar(t Table, name string, length int) string {
	return fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE VARCHAR(%d)", t.SQL(), Ident(name), length)
}

// retypeColumn is the temporary name of a column being retyped on Redshift.
const retypeColumn = "redms_retype_new"

// Retype changes a column's type, keeping its values (cast), as statements
// that run inside the window's transaction.
func Retype(d Dialect, t Table, c Column) []string {
	if d == Postgres {
		return []string{fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s",
			t.SQL(), Ident(c.Name), c.Type.SQL, Ident(c.Name), c.Type.SQL)}
	}
	tmp := Column{Name: retypeColumn, Type: c.Type}
	return []string{
		AddColumn(t, tmp),
		fmt.Sprintf("UPDATE %s SET %s = %s::%s", t.SQL(), Ident(tmp.Name), Ident(c.Name), c.Type.SQL),
		DropColumn(t, c.Name),
		fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", t.SQL(), Ident(tmp.Name), Ident(c.Name)),
	}
}

// CreateTemp creates a staging table.
func CreateTemp(name string, cols []Column) string {
	defs := make([]string, len(cols))
	for i, c := range cols {
		defs[i] = Ident(c.Name) + " " + c.Type.SQL
	}
	return "CREATE TEMP TABLE " + Ident(name) + " (" + strings.Join(defs, ", ") + ")"
}

// DropTemp drops a staging table.
func DropTemp(name string) string { return "DROP TABLE " + Ident(name) }

func identList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = Ident(n)
	}
	return strings.Join(q, ", ")
}

// CopyFromStdin loads a staging table on Postgres from CSV sent by the client.
func CopyFromStdin(tmp string, cols []string, nullMarker string) string {
	return fmt.Sprintf("COPY %s (%s) FROM STDIN WITH (FORMAT csv, NULL %s)",
		Ident(tmp), identList(cols), Literal(Postgres, nullMarker))
}

// Credentials authorise Redshift to read the staged objects: an IAM role, or
// else an access key pair.
type Credentials struct {
	IAMRole                      string
	AccessKeyID, SecretAccessKey string
	SessionToken                 string
}

// CopyFromS3 loads a staging table on Redshift from a manifest of gzipped
// CSV objects.
func CopyFromS3(tmp string, cols []string, manifestURL string, cred Credentials, region, nullMarker string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "COPY %s (%s) FROM %s", Ident(tmp), identList(cols), Literal(Redshift, manifestURL))
	if cred.IAMRole != "" {
		fmt.Fprintf(&b, " IAM_ROLE %s", Literal(Redshift, cred.IAMRole))
	} else {
		fmt.Fprintf(&b, " ACCESS_KEY_ID %s SECRET_ACCESS_KEY %s",
			Literal(Redshift, cred.AccessKeyID), Literal(Redshift, cred.SecretAccessKey))
		if cred.SessionToken != "" {
			fmt.Fprintf(&b, " SESSION_TOKEN %s", Literal(Redshift, cred.SessionToken))
		}
	}
	b.WriteString(" MANIFEST")
	if region != "" {
		fmt.Fprintf(&b, " REGION %s", Literal(Redshift, region))
	}
	fmt.Fprintf(&b, " GZIP CSV NULL AS %s TIMEFORMAT 'auto' DATEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF",
		Literal(Redshift, nullMarker))
	return b.String()
}

// LastCopyCount is the rows Redshift's last COPY of the session loaded.
func LastCopyCount() string { return "SELECT pg_last_copy_count()" }

// Match pairs a target column with the staging column compared to it.
type Match struct{ Target, Temp string }

func where(t Table, tmp string, keys []Match, nullSafe bool) string {
	if len(keys) == 0 {
		return "TRUE"
	}
	conds := make([]string, len(keys))
	for i, k := range keys {
		tc := t.SQL() + "." + Ident(k.Target)
		sc := Ident(tmp) + "." + Ident(k.Temp)
		if nullSafe {
			conds[i] = fmt.Sprintf("(%s = %s OR (%s IS NULL AND %s IS NULL))", tc, sc, tc, sc)
		} else {
			conds[i] = tc + " = " + sc
		}
	}
	return strings.Join(conds, " AND ")
}

// DeleteUsing deletes the target rows whose key matches a staging row.
// nullSafe compares NULL equal to NULL (keys that can be NULL: REPLICA
// IDENTITY FULL rows).
func DeleteUsing(t Table, tmp string, keys []Match, nullSafe bool) string {
	return "DELETE FROM " + t.SQL() + " USING " + Ident(tmp) + " WHERE " + where(t, tmp, keys, nullSafe)
}

// DeleteTempWhereExists drops the staging rows whose key already exists in
// the target (a key move a replay finds done).
func DeleteTempWhereExists(tmp string, t Table, keys []Match) string {
	return "DELETE FROM " + Ident(tmp) + " USING " + t.SQL() + " WHERE " + where(t, tmp, keys, false)
}

// InsertSelect copies staging rows into the target.
func InsertSelect(t Table, cols []Match, tmp string) string {
	tc := make([]string, len(cols))
	sc := make([]string, len(cols))
	for i, c := range cols {
		tc[i], sc[i] = Ident(c.Target), Ident(c.Temp)
	}
	return fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s", t.SQL(), strings.Join(tc, ", "), strings.Join(sc, ", "), Ident(tmp))
}

// UpdateFrom sets target columns from the staging row with the same key.
func UpdateFrom(t Table, set []Match, tmp string, keys []Match) string {
	s := make([]string, len(set))
	for i, c := range set {
		s[i] = Ident(c.Target) + " = " + Ident(tmp) + "." + Ident(c.Temp)
	}
	return fmt.Sprintf("UPDATE %s SET %s FROM %s WHERE %s", t.SQL(), strings.Join(s, ", "), Ident(tmp), where(t, tmp, keys, false))
}

// DeleteAll empties a table inside the transaction (never TRUNCATE).
func DeleteAll(t Table) string { return "DELETE FROM " + t.SQL() }

// Columns introspects a table's columns in order (information_schema works
// on both dialects).
func Columns(d Dialect, t Table) string {
	return "SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale" +
		" FROM information_schema.columns WHERE table_schema = " + Literal(d, t.Schema) +
		" AND table_name = " + Literal(d, t.Name) + " ORDER BY ordinal_position"
}

// TargetFromInfoSchema reads an information_schema.columns row back into a
// typemap.Target; ok is false for a type redms never creates.
func TargetFromInfoSchema(dataType string, charLen, precision, scale *int64) (typemap.Target, bool) {
	n := func(p *int64) int {
		if p == nil {
			return 0
		}
		return int(*p)
	}
	switch strings.ToLower(dataType) {
	case "character varying":
		if charLen == nil {
			return typemap.Make(typemap.KindVarchar, 0, 0, typemap.MaxVarchar), true
		}
		return typemap.Make(typemap.KindVarchar, 0, 0, n(charLen)), true
	case "character":
		return typemap.Make(typemap.KindChar, 0, 0, n(charLen)), true
	case "numeric":
		return typemap.Make(typemap.KindNumeric, n(precision), n(scale), 0), true
	case "smallint":
		return typemap.Make(typemap.KindSmallInt, 0, 0, 0), true
	case "integer":
		return typemap.Make(typemap.KindInteger, 0, 0, 0), true
	case "bigint":
		return typemap.Make(typemap.KindBigInt, 0, 0, 0), true
	case "real":
		return typemap.Make(typemap.KindReal, 0, 0, 0), true
	case "double precision":
		return typemap.Make(typemap.KindDouble, 0, 0, 0), true
	case "boolean":
		return typemap.Make(typemap.KindBoolean, 0, 0, 0), true
	case "date":
		return typemap.Make(typemap.KindDate, 0, 0, 0), true
	case "timestamp without time zone":
		return typemap.Make(typemap.KindTimestamp, 0, 0, 0), true
	case "timestamp with time zone":
		return typemap.Make(typemap.KindTimestampTZ, 0, 0, 0), true
	case "time without time zone":
		return typemap.Make(typemap.KindTime, 0, 0, 0), true
	case "time with time zone":
		return typemap.Make(typemap.KindTimeTZ, 0, 0, 0), true
	}
	return typemap.Target{SQL: strings.ToUpper(dataType)}, false
}

// StateName is the watermark table.
func StateName(schema string) Table { return Table{Schema: schema, Name: StateTable} }

// CreateState creates the watermark table when missing.
func CreateState(schema string) string {
	return "CREATE TABLE IF NOT EXISTS " + StateName(schema).SQL() +
		" (target VARCHAR(512) NOT NULL, last_seq BIGINT NOT NULL, last_lsn VARCHAR(32) NOT NULL, applied_at TIMESTAMP NOT NULL, PRIMARY KEY (target))"
}

func timeLiteral(d Dialect, t time.Time) string {
	return Literal(d, t.UTC().Format("2006-01-02 15:04:05.999999"))
}

// EnsureWatermark inserts the target's row (last_seq 0) when missing.
func EnsureWatermark(d Dialect, schema, target string, now time.Time) string {
	s := StateName(schema).SQL()
	return fmt.Sprintf("INSERT INTO %s (target, last_seq, last_lsn, applied_at) SELECT %s, 0, '', %s WHERE NOT EXISTS (SELECT 1 FROM %s WHERE target = %s)",
		s, Literal(d, target), timeLiteral(d, now), s, Literal(d, target))
}

// ReadWatermark reads the target's last applied stream sequence; on Postgres
// it locks the row until the transaction ends.
func ReadWatermark(d Dialect, schema, target string) string {
	q := PeekWatermark(d, schema, target)
	if d == Postgres {
		q += " FOR UPDATE"
	}
	return q
}

// PeekWatermark reads the target's last applied stream sequence without a lock.
func PeekWatermark(d Dialect, schema, target string) string {
	return "SELECT last_seq FROM " + StateName(schema).SQL() + " WHERE target = " + Literal(d, target)
}

// AdvanceWatermark records the window's last sequence and LSN.
func AdvanceWatermark(d Dialect, schema, target string, seq uint64, lsn string, now time.Time) string {
	return fmt.Sprintf("UPDATE %s SET last_seq = %d, last_lsn = %s, applied_at = %s WHERE target = %s",
		StateName(schema).SQL(), seq, Literal(d, lsn), timeLiteral(d, now), Literal(d, target))
}
