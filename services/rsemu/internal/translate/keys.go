package translate

import (
	"fmt"
	"strings"

	"github.com/redms/redms/services/rsemu/internal/rserr"
)

// Distribution styles and sort key kinds as the catalog records them.
const (
	DistAuto = "auto"
	DistEven = "even"
	DistKey  = "key"
	DistAll  = "all"

	SortNone        = ""
	SortCompound    = "compound"
	SortInterleaved = "interleaved"
	SortAuto        = "auto"
)

// Column encodings Redshift knows (ENCODE); "raw" is stored as "none", as
// pg_table_def shows it.
var encodings = map[string]bool{
	"raw": true, "az64": true, "bytedict": true, "delta": true, "delta32k": true, "lzo": true, "mostly8": true,
	"mostly16": true, "mostly32": true, "runlength": true, "text255": true, "text32k": true, "zstd": true,
}

// FixedEncodings are the encodings whose columns Redshift cannot retype
// with ALTER COLUMN … TYPE.
var FixedEncodings = map[string]bool{"bytedict": true, "runlength": true, "text255": true, "text32k": true}

// CreateTable is what the emulator records of a CREATE TABLE: Redshift's
// distribution, sort key and encodings, kept in its catalog
// (rsemu.table_attrs, rsemu.column_attrs) for pg_table_def,
// svv_table_info and the ALTER rules.
type CreateTable struct {
	Table     string // rendered name
	Like      string // rendered name of the LIKE parent, "" for none
	DistStyle string
	DistKey   string // column name as stored
	SortKind  string
	SortKeys  []string // column names as stored
	Columns   []ColumnAttrs
	// Constrained are the columns of a PRIMARY KEY, UNIQUE or FOREIGN KEY
	// constraint (column or table constraint), as stored: Redshift does
	// not enforce them but refuses ALTER COLUMN … TYPE on such a column.
	Constrained []string
}

// ColumnAttrs are one column's Redshift attributes.
type ColumnAttrs struct {
	Name    string // as stored
	Type    Type
	Encode  string // "" = the default for its type
	DistKey bool   // column attribute DISTKEY
	SortKey bool   // column attribute SORTKEY
	// Constrained: a PRIMARY KEY, UNIQUE or REFERENCES column constraint.
	Constrained bool
}

// defaultEncoding is the encoding Redshift gives a column without ENCODE:
// RAW for sort key columns and BOOLEAN, REAL, DOUBLE PRECISION (and, the
// emulator's choice, SUPER); LZO for CHAR, VARCHAR and VARBYTE; AZ64 for
// the other types.
func defaultEncoding(t Type, sortKey bool) string {
	switch {
	case sortKey, t.Class == Boolean, t.Class == Real, t.Class == Double, t.Class == Super:
		return "none"
	case t.Class == Char, t.Class == Varchar, t.Class == Varbyte:
		return "lzo"
	}
	return "az64"
}

// resolve checks the attributes and fills in what the column attributes
// imply: the DISTKEY (and DISTSTYLE KEY), a column SORTKEY.
func (c *CreateTable) resolve() error {
	has := map[string]bool{}
	for _, col := range c.Columns {
		has[col.Name] = true
		if col.DistKey {
			if c.DistKey != "" {
				return rserr.New(rserr.SyntaxError, "multiple DISTKEY columns are not allowed")
			}
			c.DistKey = col.Name
		}
		if col.SortKey {
			if len(c.SortKeys) > 0 {
				return rserr.New(rserr.SyntaxError, "multiple SORTKEY specifications are not allowed")
			}
			c.SortKind, c.SortKeys = SortCompound, []string{col.Name}
		}
	}
	if c.Like != "" {
		return nil // the parent's columns are not known here
	}
	if c.DistKey != "" && !has[c.DistKey] {
		return rserr.New(rserr.UndefinedColumn, "column %q named in DISTKEY does not exist", c.DistKey)
	}
	for _, k := range c.SortKeys {
		if !has[k] {
			return rserr.New(rserr.UndefinedColumn, "column %q named in SORTKEY does not exist", k)
		}
	}
	switch {
	case c.DistKey != "" && c.DistStyle != "" && c.DistStyle != DistKey:
		return rserr.New(rserr.FeatureNotSupported, "DISTSTYLE %s cannot be used with a DISTKEY", strings.ToUpper(c.DistStyle))
	case c.DistStyle == DistKey && c.DistKey == "":
		return rserr.New(rserr.FeatureNotSupported, "DISTSTYLE KEY must be specified with a DISTKEY")
	case c.DistKey != "":
		c.DistStyle = DistKey
	case c.DistStyle == "":
		c.DistStyle = DistAuto
	}
	if c.SortKind == SortInterleaved && len(c.SortKeys) > 8 {
		return rserr.New(rserr.FeatureNotSupported, "an INTERLEAVED SORTKEY has at most 8 columns")
	}
	if len(c.SortKeys) > 400 {
		return rserr.New(rserr.FeatureNotSupported, "a SORTKEY has at most 400 columns")
	}
	return nil
}

// newRelation selects the oid of table when the transaction created it
// (so CREATE TABLE IF NOT EXISTS of an existing table records nothing).
func newRelation(table string) string {
	return fmt.Sprintf("SELECT c.oid FROM pg_class c WHERE c.oid = %s::regclass AND c.xmin = pg_current_xact_id()::xid", QuoteLiteral(table))
}

// CatalogSQL are the statements that record c in the emulator's catalog,
// run after the CREATE inside its transaction. An oid is only reused after
// its table is gone, so rows left by a dropped table are deleted first.
func (c *CreateTable) CatalogSQL() []string {
	rel := newRelation(c.Table)
	out := []string{
		"DELETE FROM " + Schema + ".table_attrs WHERE relid IN (" + rel + ")",
		"DELETE FROM " + Schema + ".column_attrs WHERE relid IN (" + rel + ")",
		"DELETE FROM " + Schema + ".column_constraints WHERE relid IN (" + rel + ")",
	}
	if c.Like != "" && len(c.Columns) == 0 {
		// LIKE copies no constraints, as on Redshift.
		parent := QuoteLiteral(c.Like) + "::regclass"
		return append(out,
			fmt.Sprintf("INSERT INTO %s.table_attrs SELECT n.oid, p.diststyle, p.sortkind FROM (%s) n, %s.table_attrs p WHERE p.relid = %s", Schema, rel, Schema, parent),
			fmt.Sprintf(`INSERT INTO %s.column_attrs SELECT n.oid, a.attnum, p.encoding, p.distkey, p.sortkey FROM (%s) n
JOIN pg_attribute a ON a.attrelid = n.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_attribute pa ON pa.attrelid = %s AND pa.attname = a.attname AND NOT pa.attisdropped
JOIN %s.column_attrs p ON p.relid = pa.attrelid AND p.attnum = pa.attnum`, Schema, rel, parent, Schema))
	}
	sortPos := map[string]int{}
	for i, k := range c.SortKeys {
		sortPos[k] = i + 1
	}
	values := make([]string, len(c.Columns))
	for i, col := range c.Columns {
		enc := col.Encode
		if enc == "" {
			enc = defaultEncoding(col.Type, sortPos[col.Name] > 0)
		}
		values[i] = fmt.Sprintf("(%s, %s, %t, %d)", QuoteLiteral(col.Name), QuoteLiteral(enc), col.Name == c.DistKey, sortPos[col.Name])
	}
	out = append(out, fmt.Sprintf("INSERT INTO %s.table_attrs SELECT n.oid, %s, %s FROM (%s) n", Schema, QuoteLiteral(c.DistStyle), QuoteLiteral(c.SortKind), rel))
	if len(values) > 0 {
		out = append(out, fmt.Sprintf(`INSERT INTO %s.column_attrs SELECT n.oid, a.attnum, v.encoding, v.distkey, v.sortkey FROM (%s) n
JOIN pg_attribute a ON a.attrelid = n.oid JOIN (VALUES %s) v (name, encoding, distkey, sortkey) ON a.attname = v.name`,
			Schema, rel, strings.Join(values, ", ")))
	}
	var constrained []string
	for _, col := range c.Columns {
		if col.Constrained {
			constrained = append(constrained, col.Name)
		}
	}
	constrained = append(constrained, c.Constrained...)
	if len(constrained) > 0 {
		out = append(out, ConstrainSQL(rel, constrained))
	}
	return out
}

// ConstrainSQL records in the emulator's catalog that columns (names as
// stored) of the table whose oid query rel selects carry a PRIMARY KEY,
// UNIQUE or FOREIGN KEY constraint.
func ConstrainSQL(rel string, columns []string) string {
	names := make([]string, len(columns))
	for i, c := range columns {
		names[i] = QuoteLiteral(c)
	}
	return fmt.Sprintf("INSERT INTO %s.column_constraints SELECT a.attrelid, a.attnum FROM pg_attribute a WHERE a.attrelid IN (%s) AND a.attname IN (%s) AND NOT a.attisdropped",
		Schema, rel, strings.Join(names, ", "))
}

// Constraint is ALTER TABLE … ADD [CONSTRAINT name] PRIMARY KEY | UNIQUE |
// FOREIGN KEY (columns): not enforced, recorded for the ALTER rules.
type Constraint struct {
	Table   string   // rendered name
	Columns []string // as stored
}

// CatalogSQL is the statement that records the constraint.
func (c *Constraint) CatalogSQL() string {
	return ConstrainSQL("SELECT "+QuoteLiteral(c.Table)+"::regclass::oid", c.Columns)
}

// constraintColumns reads the columns of a table constraint in significant
// range [a, b) — [CONSTRAINT name] PRIMARY KEY (…) | UNIQUE (…) | FOREIGN
// KEY (…) REFERENCES … — or nil for another constraint.
func constraintColumns(s stmt, a, b int) []string {
	if s.is(a, "constraint") {
		a += 2
	}
	switch {
	case s.is(a, "primary") && s.is(a+1, "key"), s.is(a, "foreign") && s.is(a+1, "key"):
		a += 2
	case s.is(a, "unique"):
		a++
	default:
		return nil
	}
	if a >= b || !s.punct(a, "(") {
		return nil
	}
	end := s.closing(a)
	if end < 0 || end > b {
		return nil
	}
	var cols []string
	for _, r := range s.splitCommas(a+1, end) {
		if r[1]-r[0] == 1 {
			cols = append(cols, s.tok(r[0]).IdentValue())
		}
	}
	return cols
}

// parseEncode reads the encoding after ENCODE at significant token j.
func parseEncode(s stmt, j int, col string) (string, error) {
	enc := strings.ToLower(s.tok(j).Text)
	if !encodings[enc] {
		return "", rserr.New(rserr.SyntaxError, "invalid encoding type specified for column %q", col)
	}
	if enc == "raw" {
		enc = "none"
	}
	return enc, nil
}

// parseTableAttributes reads Redshift's table attributes (DISTSTYLE,
// DISTKEY, SORTKEY, ENCODE AUTO, BACKUP) into c and returns the index
// after them.
func parseTableAttributes(s stmt, j int, c *CreateTable) (int, error) {
	names := func(open int) ([]string, int, error) {
		if !s.punct(open, "(") {
			return nil, 0, rserr.Syntax(s.tok(open).Text)
		}
		end := s.closing(open)
		if end < 0 {
			return nil, 0, rserr.Syntax("(")
		}
		var out []string
		for _, r := range s.splitCommas(open+1, end) {
			if r[1]-r[0] != 1 {
				return nil, 0, rserr.Syntax(s.tok(r[0]).Text)
			}
			out = append(out, s.tok(r[0]).IdentValue())
		}
		return out, end + 1, nil
	}
	kind := SortCompound
	for j < len(s.sig) {
		switch {
		case s.is(j, "diststyle"):
			style := strings.ToLower(s.tok(j + 1).Text)
			switch style {
			case DistAuto, DistEven, DistKey, DistAll:
			default:
				return 0, rserr.Syntax(s.tok(j + 1).Text)
			}
			c.DistStyle = style
			j += 2
		case s.is(j, "distkey"):
			cols, next, err := names(j + 1)
			if err != nil {
				return 0, err
			}
			if len(cols) != 1 || c.DistKey != "" {
				return 0, rserr.New(rserr.SyntaxError, "multiple DISTKEY columns are not allowed")
			}
			c.DistKey, j = cols[0], next
		case s.is(j, "sortkey"):
			if s.is(j+1, "auto") {
				c.SortKind, j = SortAuto, j+2
				continue
			}
			cols, next, err := names(j + 1)
			if err != nil {
				return 0, err
			}
			if len(c.SortKeys) > 0 {
				return 0, rserr.New(rserr.SyntaxError, "multiple SORTKEY specifications are not allowed")
			}
			c.SortKind, c.SortKeys, j = kind, cols, next
		case s.is(j, "compound"), s.is(j, "interleaved"):
			if !s.is(j+1, "sortkey") {
				return 0, rserr.Syntax(s.tok(j + 1).Text)
			}
			kind = strings.ToLower(s.tok(j).Text)
			j++
		case s.is(j, "encode") && s.is(j+1, "auto"):
			j += 2
		case s.is(j, "backup") && (s.is(j+1, "yes") || s.is(j+1, "no")):
			j += 2
		default:
			return j, nil
		}
	}
	return j, nil
}
