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
//   - Staging: one session temp table per window (StageTable), created,
//     loaded by one COPY and dropped inside the window's transaction. Its
//     first column (StepColumn) says which merge step a row belongs to; the
//     others have positional names (k0.. for match keys, c0.. for values),
//     typed like the target columns they stand for. Every merge statement
//     reads only the rows of its step. On Redshift it is distributed on the
//     staged column of the target's DISTKEY, so the joins stay on their
//     slices.
//   - Key joins on VARCHAR columns also compare OCTET_LENGTH (Redshift
//     ignores trailing blanks when comparing VARCHARs, and counts them in
//     OCTET_LENGTH): a key 'x ' never matches the row 'x'.
//   - Created Redshift targets declare the source key as an informational
//     PRIMARY KEY (never enforced) and COMPOUND SORTKEY, distributed as
//     TableKeys.Dist says (DISTKEY on the first key column by default).
//   - Locks: each window's transaction starts with Lock of the table's state
//     table, before its snapshot, so the applied-position fence holds under
//     SNAPSHOT and SERIALIZABLE isolation alike (a second owner waits for the
//     first one's commit, then sees it). On Postgres the target is locked
//     too (SHARE ROW EXCLUSIVE: writers wait, readers do not); on Redshift it
//     is not, because LOCK there is exclusive and every query of the target
//     would wait for each window, while DML takes Redshift's table write lock
//     anyway.
//   - TRUNCATE is never sent: it commits the open transaction on Redshift.
//     Emptying a table is DELETE FROM.
//   - Retyping a column: Postgres ALTER COLUMN … TYPE … USING; Redshift can
//     only widen a VARCHAR with ALTER COLUMN (outside a transaction, before the
//     window), any other change is add column, copy with a cast, drop, rename
//     — inside the window's transaction. Where Redshift refuses that (the
//     column is a DISTKEY or SORTKEY column, has a PRIMARY KEY, or an
//     encoding that cannot change type) the table is rebuilt (Rebuild).
//   - State: one table per target in the state schema (state.go), holding
//     the applied source position; see docs/CONTRACTS.md.
package warehouse

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

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

// MaxStatementBytes is the largest statement Redshift takes (16 MB).
const MaxStatementBytes = 16 << 20

// DistStyle is how a created Redshift target is distributed
// (REDMS_REDSHIFT_DISTSTYLE).
type DistStyle string

// Distribution styles.
const (
	DistKey  DistStyle = "key"  // DISTKEY on the first key column (DISTSTYLE AUTO without a key)
	DistAuto DistStyle = "auto" // Redshift chooses
	DistEven DistStyle = "even" // round robin
)

// ParseDistStyle reads a REDMS_REDSHIFT_DISTSTYLE value.
func ParseDistStyle(s string) (DistStyle, error) {
	switch d := DistStyle(strings.ToLower(strings.TrimSpace(s))); d {
	case DistKey, DistAuto, DistEven:
		return d, nil
	}
	return "", fmt.Errorf("distribution style %q: want key, auto or even", s)
}

// TableKeys are the Redshift attributes of a table the loader creates: the
// source key as SORTKEY (and PRIMARY KEY when it is the source's primary
// key), the distribution. Postgres targets get none of them.
type TableKeys struct {
	Columns []string // key columns in key order; none for a keyless table
	Primary bool     // declare PRIMARY KEY (Columns): informational on Redshift
	Dist    DistStyle
}

// DistKey is the column the table is distributed on, "" for none.
func (k TableKeys) DistKey() string {
	if k.Dist == DistKey && len(k.Columns) > 0 {
		return k.Columns[0]
	}
	return ""
}

// attributes renders k after a CREATE TABLE's column list.
func (k TableKeys) attributes() string {
	var b strings.Builder
	switch {
	case k.DistKey() != "":
		fmt.Fprintf(&b, " DISTSTYLE KEY DISTKEY (%s)", Ident(k.DistKey()))
	case k.Dist == DistEven:
		b.WriteString(" DISTSTYLE EVEN")
	default:
		b.WriteString(" DISTSTYLE AUTO")
	}
	if len(k.Columns) > 0 {
		fmt.Fprintf(&b, " COMPOUND SORTKEY (%s)", identList(k.Columns))
	}
	return b.String()
}

func createTable(d Dialect, head string, t Table, cols []Column, k TableKeys) string {
	defs := make([]string, len(cols), len(cols)+1)
	for i, c := range cols {
		defs[i] = Ident(c.Name) + " " + c.Type.SQL
	}
	if d == Postgres {
		return head + t.SQL() + " (" + strings.Join(defs, ", ") + ")"
	}
	if k.Primary && len(k.Columns) > 0 {
		defs = append(defs, "PRIMARY KEY ("+identList(k.Columns)+")")
	}
	return head + t.SQL() + " (" + strings.Join(defs, ", ") + ")" + k.attributes()
}

// CreateTable creates a target table when missing, every length explicit;
// on Redshift with k's key and distribution.
func CreateTable(d Dialect, t Table, cols []Column, k TableKeys) string {
	return createTable(d, "CREATE TABLE IF NOT EXISTS ", t, cols, k)
}

// RebuildName is the name a rebuilt table has until it replaces t.
func RebuildName(t Table) Table {
	sum := sha256.Sum256([]byte(t.SQL()))
	return Table{Schema: t.Schema, Name: "redms_rebuild_" + hex.EncodeToString(sum[:4])}
}

// Rebuild replaces Redshift table t, whose columns are from, by a new one
// of columns to with k's key and distribution, inside the transaction (a
// deep copy): create it, copy every column to has that from has (cast when
// its type changes; a column only to has stays NULL), drop t, rename.
func Rebuild(t Table, from, to []Column, k TableKeys) []string {
	tmp := RebuildName(t)
	var names, exprs []string
	for _, c := range to {
		j := slices.IndexFunc(from, func(f Column) bool { return f.Name == c.Name })
		if j < 0 {
			continue
		}
		e := Ident(c.Name)
		if from[j].Type.SQL != c.Type.SQL {
			e += "::" + c.Type.SQL
		}
		names, exprs = append(names, Ident(c.Name)), append(exprs, e)
	}
	out := []string{createTable(Redshift, "CREATE TABLE ", tmp, to, k)}
	if len(names) > 0 {
		out = append(out, fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s", tmp.SQL(), strings.Join(names, ", "), strings.Join(exprs, ", "), t.SQL()))
	}
	return append(out, "DROP TABLE "+t.SQL(), "ALTER TABLE "+tmp.SQL()+" RENAME TO "+Ident(t.Name))
}

// Lock locks tables for the rest of the transaction, before its snapshot:
// Redshift's LOCK (others' reads and writes wait); on Postgres SHARE ROW
// EXCLUSIVE (writers wait, readers do not).
func Lock(d Dialect, tables ...Table) string {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.SQL()
	}
	if d == Redshift {
		return "LOCK " + strings.Join(names, ", ")
	}
	return "LOCK TABLE " + strings.Join(names, ", ") + " IN SHARE ROW EXCLUSIVE MODE"
}

// SetSearchPath makes schema the session's search path: Redshift's
// pg_table_def shows only tables of schemas on it. Every other statement
// qualifies its tables.
func SetSearchPath(schema string) string { return "SET search_path TO " + Ident(schema) }

// TableAttrs reads a Redshift table's column attributes: encoding, whether
// the column is the DISTKEY, its position in the SORTKEY (0 for none). Its
// schema must be on the search path.
func TableAttrs(t Table) string {
	return `SELECT "column", encoding, distkey, sortkey FROM pg_table_def WHERE schemaname = ` + Literal(Redshift, t.Schema) +
		" AND tablename = " + Literal(Redshift, t.Name)
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

// StageTable is the name of a window's staging table (a session temp
// table), StepColumn its first column: the merge step a row is for.
const (
	StageTable = "redms_stage"
	StepColumn = "redms_step"
)

// CreateStage creates the staging table: StepColumn INTEGER, then cols. On
// Redshift it is distributed on distKey when set.
func CreateStage(d Dialect, cols []Column, distKey string) string {
	defs := make([]string, 0, len(cols)+1)
	defs = append(defs, Ident(StepColumn)+" INTEGER")
	for _, c := range cols {
		defs = append(defs, Ident(c.Name)+" "+c.Type.SQL)
	}
	sql := "CREATE TEMP TABLE " + Ident(StageTable) + " (" + strings.Join(defs, ", ") + ")"
	if d == Redshift && distKey != "" {
		sql += " DISTSTYLE KEY DISTKEY (" + Ident(distKey) + ")"
	}
	return sql
}

// AnalyzeStage gathers the staging table's statistics (Postgres: without
// them the planner guesses a step's share of the rows).
func AnalyzeStage() string { return "ANALYZE " + Ident(StageTable) }

// DropStage drops the staging table.
func DropStage() string { return "DROP TABLE " + Ident(StageTable) }

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

// Match pairs a target column with the staging column compared to it or
// copied into it. Exact: a VARCHAR key, compared with its trailing blanks.
type Match struct {
	Target, Temp string
	Exact        bool
}

func where(t Table, step int, keys []Match, nullSafe bool) string {
	st := Ident(StageTable)
	conds := make([]string, 0, len(keys)+1)
	conds = append(conds, fmt.Sprintf("%s.%s = %d", st, Ident(StepColumn), step))
	for _, k := range keys {
		tc := t.SQL() + "." + Ident(k.Target)
		sc := st + "." + Ident(k.Temp)
		eq := tc + " = " + sc
		if k.Exact {
			eq += fmt.Sprintf(" AND OCTET_LENGTH(%s) = OCTET_LENGTH(%s)", tc, sc)
		}
		if nullSafe {
			if k.Exact {
				eq = "(" + eq + ")"
			}
			eq = fmt.Sprintf("(%s OR (%s IS NULL AND %s IS NULL))", eq, tc, sc)
		}
		conds = append(conds, eq)
	}
	return strings.Join(conds, " AND ")
}

// DeleteUsing deletes the target rows whose key matches a staging row of
// step. nullSafe compares NULL equal to NULL (keys that can be NULL:
// REPLICA IDENTITY FULL rows).
func DeleteUsing(t Table, step int, keys []Match, nullSafe bool) string {
	return "DELETE FROM " + t.SQL() + " USING " + Ident(StageTable) + " WHERE " + where(t, step, keys, nullSafe)
}

// DeleteStageWhereExists drops the staging rows of step whose key already
// exists in the target (a key move a replay finds done).
func DeleteStageWhereExists(step int, t Table, keys []Match) string {
	return "DELETE FROM " + Ident(StageTable) + " USING " + t.SQL() + " WHERE " + where(t, step, keys, false)
}

// InsertSelect copies the staging rows of step into the target.
func InsertSelect(t Table, cols []Match, step int) string {
	tc := make([]string, len(cols))
	sc := make([]string, len(cols))
	for i, c := range cols {
		tc[i], sc[i] = Ident(c.Target), Ident(c.Temp)
	}
	return fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s WHERE %s = %d", t.SQL(), strings.Join(tc, ", "), strings.Join(sc, ", "),
		Ident(StageTable), Ident(StepColumn), step)
}

// UpdateFrom sets target columns from the staging row of step with the same
// key.
func UpdateFrom(t Table, set []Match, step int, keys []Match) string {
	st := Ident(StageTable)
	s := make([]string, len(set))
	for i, c := range set {
		s[i] = Ident(c.Target) + " = " + st + "." + Ident(c.Temp)
	}
	return fmt.Sprintf("UPDATE %s SET %s FROM %s WHERE %s", t.SQL(), strings.Join(s, ", "), st, where(t, step, keys, false))
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
	case "super", "jsonb": // rsemu shows a SUPER as jsonb
		return typemap.Make(typemap.KindSuper, 0, 0, 0), true
	case "binary varying", "varbyte", "bytea": // rsemu shows a VARBYTE as bytea, without its length
		if charLen == nil {
			return typemap.Make(typemap.KindVarbyte, 0, 0, typemap.MaxVarbyte), true
		}
		return typemap.Make(typemap.KindVarbyte, 0, 0, n(charLen)), true
	}
	return typemap.Target{SQL: strings.ToUpper(dataType)}, false
}

// FillColumn sets column name of every row of t to value, a literal the
// warehouse reads as the column's type (a column added with a constant
// default, which the source filled without WAL).
func FillColumn(d Dialect, t Table, name, value string) string {
	return "UPDATE " + t.SQL() + " SET " + Ident(name) + " = " + Literal(d, value)
}
