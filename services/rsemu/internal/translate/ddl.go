package translate

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/redms/redms/services/rsemu/internal/rserr"
	"github.com/redms/redms/services/rsemu/internal/sqltok"
)

// TypeClass is the family of a Redshift column type.
type TypeClass int

// Type classes.
const (
	SmallInt TypeClass = iota + 1
	Integer
	BigInt
	Numeric
	Real
	Double
	Boolean
	Char
	Varchar
	Date
	Timestamp
	TimestampTZ
	Time
	TimeTZ
	Super   // stored as jsonb
	Varbyte // stored as bytea; Length: bytes
)

// Limits of SUPER and VARBYTE.
const (
	MaxSuperBytes  = 16 << 20 // a SUPER value
	MaxVarbyte     = 16 << 20 // VARBYTE(n)
	DefaultVarbyte = 64000
)

// Type is a Redshift column type.
type Type struct {
	Class     TypeClass
	Length    int // Char, Varchar: bytes
	Precision int // Numeric
	Scale     int // Numeric
}

// Postgres is the Postgres type that stores t.
func (t Type) Postgres() string {
	switch t.Class {
	case SmallInt:
		return "smallint"
	case Integer:
		return "integer"
	case BigInt:
		return "bigint"
	case Numeric:
		return fmt.Sprintf("numeric(%d,%d)", t.Precision, t.Scale)
	case Real:
		return "real"
	case Double:
		return "double precision"
	case Boolean:
		return "boolean"
	case Char:
		return fmt.Sprintf("char(%d)", t.Length)
	case Varchar:
		return fmt.Sprintf("varchar(%d)", t.Length)
	case Date:
		return "date"
	case Timestamp:
		return "timestamp"
	case TimestampTZ:
		return "timestamptz"
	case Time:
		return "time"
	case TimeTZ:
		return "timetz"
	case Super:
		return "jsonb"
	case Varbyte:
		return "bytea"
	}
	return ""
}

// Check is the CHECK constraint that enforces t's Redshift value rule on
// column col (as rendered in SQL): the constraint's name prefix, which
// ConstraintType reads back, and its expression; "" when Postgres' own type
// already enforces the rule.
func (t Type) Check(col string) (prefix, expr string) {
	switch t.Class {
	case Numeric:
		if t.Precision != 19 {
			return "", ""
		}
		// Redshift stores precision 19 as a 64-bit integer of scaled units.
		lo, hi := Int64Bounds(t.Scale)
		return fmt.Sprintf("rsemu_n19s%d", t.Scale), fmt.Sprintf("%s BETWEEN %s AND %s", col, lo, hi)
	case Varchar:
		return fmt.Sprintf("rsemu_vc%d", t.Length), fmt.Sprintf("octet_length(%s) <= %d", col, t.Length)
	case Char:
		return fmt.Sprintf("rsemu_ch%d", t.Length), fmt.Sprintf("octet_length(%s::text) = char_length(%s::text)", col, col)
	case Date:
		return "rsemu_date", fmt.Sprintf("%s BETWEEN '4713-01-01 BC' AND '294276-12-31'", col)
	case Timestamp:
		return "rsemu_ts", fmt.Sprintf("isfinite(%s) AND %s >= '4713-01-01 00:00:00 BC'", col, col)
	case TimestampTZ:
		return "rsemu_tstz", fmt.Sprintf("isfinite(%s) AND %s >= '4713-01-01 00:00:00+00 BC'", col, col)
	case Super:
		return "rsemu_super", fmt.Sprintf("octet_length(%s::text) <= %d", col, MaxSuperBytes)
	case Varbyte:
		return fmt.Sprintf("rsemu_vb%d", t.Length), fmt.Sprintf("octet_length(%s) <= %d", col, t.Length)
	}
	return "", ""
}

// Int64Bounds are the least and greatest NUMERIC(19,scale) values Redshift
// holds: ±2^63 units of 10^-scale, as decimal text.
func Int64Bounds(scale int) (lo, hi string) {
	shift := func(digits string) string {
		if scale == 0 {
			return digits
		}
		for len(digits) <= scale {
			digits = "0" + digits
		}
		return digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	return "-" + shift("9223372036854775808"), shift("9223372036854775807")
}

// checkClause is the column constraint clause for t on col, named
// <prefix>_<suffix><n>; "" when t needs none.
func checkClause(t Type, col, suffix string, n int) string {
	prefix, expr := t.Check(col)
	if prefix == "" {
		return ""
	}
	return fmt.Sprintf("CONSTRAINT %s CHECK (%s)", QuoteIdent(prefix+"_"+suffix+strconv.Itoa(n)), expr)
}

// ConstraintType reads the Redshift type back from the name of a
// constraint made by Check; ok is false for other names.
func ConstraintType(name string) (Type, bool) {
	rest, ok := strings.CutPrefix(name, "rsemu_")
	if !ok {
		return Type{}, false
	}
	kind, _, _ := strings.Cut(rest, "_")
	if sc, ok := strings.CutPrefix(kind, "n19s"); ok {
		if n, err := strconv.Atoi(sc); err == nil {
			return Type{Class: Numeric, Precision: 19, Scale: n}, true
		}
	}
	switch kind {
	case "date":
		return Type{Class: Date}, true
	case "ts":
		return Type{Class: Timestamp}, true
	case "tstz":
		return Type{Class: TimestampTZ}, true
	case "super":
		return Type{Class: Super}, true
	}
	for prefix, class := range map[string]TypeClass{"vc": Varchar, "ch": Char, "vb": Varbyte} {
		if n, ok := strings.CutPrefix(kind, prefix); ok {
			if l, err := strconv.Atoi(n); err == nil {
				return Type{Class: class, Length: l}, true
			}
		}
	}
	return Type{}, false
}

// AlterVarchar is the Postgres statement for ALTER TABLE … ALTER COLUMN …
// TYPE VARCHAR(n): it swaps the column's byte-length constraints (named in
// old) for one of the new length.
func AlterVarchar(a *AlterColumn, old []string, suffix string) string {
	var b strings.Builder
	b.WriteString("ALTER TABLE " + a.Table + " ")
	for _, o := range old {
		b.WriteString("DROP CONSTRAINT " + QuoteIdent(o) + ", ")
	}
	fmt.Fprintf(&b, "ALTER COLUMN %s TYPE %s, ADD %s", a.ColumnSQL, a.NewType.Postgres(), checkClause(a.NewType, a.ColumnSQL, suffix, 0))
	return b.String()
}

// String is the type as Redshift names it.
func (t Type) String() string {
	switch t.Class {
	case SmallInt:
		return "smallint"
	case Integer:
		return "integer"
	case BigInt:
		return "bigint"
	case Numeric:
		return fmt.Sprintf("numeric(%d,%d)", t.Precision, t.Scale)
	case Real:
		return "real"
	case Double:
		return "double precision"
	case Boolean:
		return "boolean"
	case Char:
		return fmt.Sprintf("character(%d)", t.Length)
	case Varchar:
		return fmt.Sprintf("character varying(%d)", t.Length)
	case Date:
		return "date"
	case Timestamp:
		return "timestamp without time zone"
	case TimestampTZ:
		return "timestamp with time zone"
	case Time:
		return "time without time zone"
	case TimeTZ:
		return "time with time zone"
	case Super:
		return "super"
	case Varbyte:
		return fmt.Sprintf("varbyte(%d)", t.Length)
	}
	return "unknown"
}

// typeStop are the words that end a column's type.
var typeStop = map[string]bool{
	"not": true, "null": true, "default": true, "primary": true, "unique": true, "references": true,
	"check": true, "constraint": true, "encode": true, "distkey": true, "sortkey": true, "identity": true,
	"generated": true, "collate": true,
}

// parseType parses the column type starting at significant token i of s,
// for column col. It returns the type and the index after it.
func parseType(s stmt, i int, col string) (Type, int, error) {
	start := i
	var words []string
	for i < len(s.sig) {
		t := s.tok(i)
		if t.Kind == sqltok.QuotedIdent || (t.Kind == sqltok.Ident && !typeStop[strings.ToLower(t.Text)]) || (s.punct(i, ".") && len(words) > 0) {
			words = append(words, strings.ToLower(t.Text))
			i++
			continue
		}
		if s.punct(i, "(") {
			end := s.closing(i)
			if end < 0 {
				return Type{}, 0, rserr.Syntax(t.Text)
			}
			i = end + 1
			continue
		}
		if s.punct(i, "[") {
			end := s.closing(i)
			if end < 0 {
				return Type{}, 0, rserr.Syntax(t.Text)
			}
			words = append(words, "[]")
			i = end + 1
			continue
		}
		break
	}
	written := s.text(start, i)
	if len(words) == 0 {
		return Type{}, 0, rserr.Syntax(s.tok(i).Text)
	}
	unsupported := rserr.New(rserr.FeatureNotSupported, "Column %q has unsupported type %q", col, strings.ToLower(written))
	// type arguments: the first parenthesised group, if any
	var args []string
	for j := start; j < i; j++ {
		if s.punct(j, "(") {
			end := s.closing(j)
			for _, r := range s.splitCommas(j+1, end) {
				args = append(args, strings.ToLower(s.text(r[0], r[1])))
			}
			break
		}
	}
	name := strings.Join(words, " ")
	intArg := func(k int) (int, error) {
		n, err := strconv.Atoi(args[k])
		if err != nil {
			return 0, rserr.Syntax(args[k])
		}
		return n, nil
	}
	noArgs := func(t Type) (Type, int, error) {
		if len(args) > 0 {
			return Type{}, 0, unsupported
		}
		return t, i, nil
	}
	switch name {
	case "smallint", "int2":
		return noArgs(Type{Class: SmallInt})
	case "integer", "int", "int4":
		return noArgs(Type{Class: Integer})
	case "bigint", "int8":
		return noArgs(Type{Class: BigInt})
	case "real", "float4":
		return noArgs(Type{Class: Real})
	case "double precision", "float8", "float":
		return noArgs(Type{Class: Double})
	case "boolean", "bool":
		return noArgs(Type{Class: Boolean})
	case "date":
		return noArgs(Type{Class: Date})
	case "timestamp", "timestamp without time zone":
		return noArgs(Type{Class: Timestamp})
	case "timestamptz", "timestamp with time zone":
		return noArgs(Type{Class: TimestampTZ})
	case "time", "time without time zone":
		return noArgs(Type{Class: Time})
	case "timetz", "time with time zone":
		return noArgs(Type{Class: TimeTZ})
	case "super":
		return noArgs(Type{Class: Super})
	case "varbyte", "varbinary", "binary varying":
		t := Type{Class: Varbyte, Length: DefaultVarbyte}
		if len(args) > 1 {
			return Type{}, 0, unsupported
		}
		if len(args) == 1 {
			var err error
			if t.Length, err = intArg(0); err != nil {
				return Type{}, 0, err
			}
		}
		if t.Length < 1 || t.Length > MaxVarbyte {
			return Type{}, 0, rserr.New(rserr.InvalidParameter, "length for type varbyte cannot exceed %d", MaxVarbyte)
		}
		return t, i, nil
	case "numeric", "decimal":
		t := Type{Class: Numeric, Precision: 18, Scale: 0}
		if len(args) > 2 {
			return Type{}, 0, unsupported
		}
		var err error
		if len(args) >= 1 {
			if t.Precision, err = intArg(0); err != nil {
				return Type{}, 0, err
			}
		}
		if len(args) == 2 {
			if t.Scale, err = intArg(1); err != nil {
				return Type{}, 0, err
			}
		}
		if t.Precision < 1 || t.Precision > MaxPrecision {
			return Type{}, 0, rserr.New(rserr.InvalidParameter, "NUMERIC precision %d must be between 1 and %d", t.Precision, MaxPrecision)
		}
		if t.Scale < 0 || t.Scale > MaxScale || t.Scale > t.Precision {
			return Type{}, 0, rserr.New(rserr.InvalidParameter, "NUMERIC scale %d must be between 0 and precision %d", t.Scale, t.Precision)
		}
		return t, i, nil
	case "char", "character", "nchar", "bpchar", "varchar", "character varying", "char varying", "nvarchar", "text":
		class, n := Varchar, 256
		if name == "char" || name == "character" || name == "nchar" || name == "bpchar" {
			class, n = Char, 1
		}
		if name == "text" && len(args) > 0 {
			return Type{}, 0, unsupported
		}
		if len(args) > 1 {
			return Type{}, 0, unsupported
		}
		if len(args) == 1 {
			if args[0] == "max" {
				n = MaxVarchar
				if class == Char {
					n = MaxChar
				}
			} else {
				var err error
				if n, err = intArg(0); err != nil {
					return Type{}, 0, err
				}
			}
		}
		if class == Char && (n < 1 || n > MaxChar) {
			return Type{}, 0, rserr.New(rserr.InvalidParameter, "length for type char cannot exceed %d", MaxChar)
		}
		if class == Varchar && (n < 1 || n > MaxVarchar) {
			return Type{}, 0, rserr.New(rserr.InvalidParameter, "length for type varchar cannot exceed %d", MaxVarchar)
		}
		return Type{Class: class, Length: n}, i, nil
	}
	return Type{}, 0, unsupported
}

// translateCreate handles CREATE TABLE and rejects CREATE forms Redshift
// lacks.
func translateCreate(s stmt, opt Options) (Stmt, error) {
	i := 1
	if s.is(i, "or") && s.is(i+1, "replace") {
		return Stmt{Kind: Passthrough, SQL: s.text(0, len(s.sig))}, nil // views, functions
	}
	temp := false
	if s.is(i, "local") || s.is(i, "global") {
		i++
	}
	if s.is(i, "temp") || s.is(i, "temporary") {
		temp = true
		i++
	}
	switch {
	case s.is(i, "unlogged"), s.is(i, "index"), s.is(i, "sequence"), s.is(i, "type"), s.is(i, "domain"), s.is(i, "extension"):
		return Stmt{}, rserr.Syntax(s.tok(i).Text)
	case s.is(i, "unique") && s.is(i+1, "index"):
		return Stmt{}, rserr.Syntax(s.tok(i).Text)
	case !s.is(i, "table"):
		return Stmt{Kind: Passthrough, SQL: s.text(0, len(s.sig))}, nil
	}
	head := i + 1
	if s.is(head, "if") && s.is(head+1, "not") && s.is(head+2, "exists") {
		head += 3
	}
	nameEnd := head
	for nameEnd < len(s.sig) && (s.tok(nameEnd).Kind == sqltok.Ident || s.tok(nameEnd).Kind == sqltok.QuotedIdent || s.punct(nameEnd, ".")) && !s.is(nameEnd, "as") {
		if s.punct(nameEnd, ".") && temp {
			return Stmt{}, rserr.New(rserr.InvalidTableDef, "temporary tables cannot specify a schema name")
		}
		nameEnd++
	}
	if nameEnd == head {
		return Stmt{}, rserr.Syntax(s.tok(head).Text)
	}
	var b strings.Builder
	b.WriteString(s.text(0, nameEnd))
	create := &CreateTable{Table: s.text(head, nameEnd)}
	j := nameEnd
	if s.punct(j, "(") {
		end := s.closing(j)
		if end < 0 {
			return Stmt{}, rserr.Syntax(s.tok(j).Text)
		}
		var elems []string
		for n, r := range s.splitCommas(j+1, end) {
			e, err := tableElement(s, r[0], r[1], opt.Suffix, n, create)
			if err != nil {
				return Stmt{}, err
			}
			if e != "" {
				elems = append(elems, e)
			}
		}
		b.WriteString(" (" + strings.Join(elems, ", ") + ")")
		j = end + 1
	}
	j, err := parseTableAttributes(s, j, create)
	if err != nil {
		return Stmt{}, err
	}
	if j < len(s.sig) {
		if !s.is(j, "as") {
			return Stmt{}, rserr.Syntax(s.tok(j).Text)
		}
		b.WriteString(" " + s.text(j, len(s.sig)))
		return Stmt{Kind: Passthrough, SQL: b.String()}, nil // CREATE TABLE … AS: attributes not recorded
	}
	if err := create.resolve(); err != nil {
		return Stmt{}, err
	}
	return Stmt{Kind: Create, SQL: b.String(), Create: create}, nil
}

// tableElement translates one element of a CREATE TABLE list: a column,
// LIKE, or a table constraint ("" when dropped).
func tableElement(s stmt, a, b int, suffix string, n int, create *CreateTable) (string, error) {
	switch {
	case a >= b:
		return "", rserr.Syntax(s.tok(a).Text)
	case s.is(a, "like"):
		// the copy keeps the emulator's value-rule constraints
		if end := s.nameEnd(a + 1); end > a+1 {
			create.Like = s.text(a+1, end)
		}
		return s.text(a, b) + " INCLUDING CONSTRAINTS", nil
	case s.is(a, "primary"), s.is(a, "unique"), s.is(a, "foreign"):
		// Redshift does not enforce these; the ALTER rules need them
		create.Constrained = append(create.Constrained, constraintColumns(s, a, b)...)
		return "", nil
	case s.is(a, "constraint"):
		if s.is(a+2, "check") {
			return "", rserr.New(rserr.FeatureNotSupported, "CHECK constraints are not supported")
		}
		create.Constrained = append(create.Constrained, constraintColumns(s, a, b)...)
		return "", nil
	case s.is(a, "check"):
		return "", rserr.New(rserr.FeatureNotSupported, "CHECK constraints are not supported")
	}
	def, attrs, err := columnDef(s, a, b, suffix, n)
	if err != nil {
		return "", err
	}
	create.Columns = append(create.Columns, attrs)
	return def, nil
}

// columnDef translates "name type [constraints]" in significant range
// [a, b); the value-rule constraint is named with suffix and n.
func columnDef(s stmt, a, b int, suffix string, n int) (string, ColumnAttrs, error) {
	nameTok := s.tok(a)
	if nameTok.Kind != sqltok.Ident && nameTok.Kind != sqltok.QuotedIdent {
		return "", ColumnAttrs{}, rserr.Syntax(nameTok.Text)
	}
	col := nameTok.IdentValue()
	typ, j, err := parseType(stmt{toks: s.toks, sig: s.sig[:b]}, a+1, col)
	if err != nil {
		return "", ColumnAttrs{}, err
	}
	attrs := ColumnAttrs{Name: col, Type: typ}
	parts := []string{nameTok.Text, typ.Postgres()}
	for j < b {
		switch {
		case s.is(j, "not") && s.is(j+1, "null"):
			parts = append(parts, "NOT NULL")
			j += 2
		case s.is(j, "null"):
			parts = append(parts, "NULL")
			j++
		case s.is(j, "default"):
			k := j + 1
			depth := 0
			for k < b {
				if s.punct(k, "(") {
					depth++
				} else if s.punct(k, ")") {
					depth--
				} else if depth == 0 && s.tok(k).Kind == sqltok.Ident && constraintStart(s, k) {
					break
				}
				k++
			}
			parts = append(parts, s.text(j, k))
			j = k
		case s.is(j, "primary") && s.is(j+1, "key"):
			attrs.Constrained = true
			j += 2
		case s.is(j, "unique"):
			attrs.Constrained = true
			j++
		case s.is(j, "distkey"):
			attrs.DistKey = true
			j++
		case s.is(j, "sortkey"):
			attrs.SortKey = true
			j++
		case s.is(j, "encode"):
			if attrs.Encode, err = parseEncode(s, j+1, col); err != nil {
				return "", ColumnAttrs{}, err
			}
			j += 2
		case s.is(j, "collate"):
			j += 2
		case s.is(j, "references"):
			attrs.Constrained = true
			j += 2
			for j < b && s.punct(j, ".") {
				j += 2
			}
			if s.punct(j, "(") {
				j = s.closing(j) + 1
			}
		case s.is(j, "generated") && s.is(j+1, "by") && s.is(j+2, "default") && s.is(j+3, "as") && s.is(j+4, "identity") && s.punct(j+5, "("):
			j += 4 // Redshift's long form of IDENTITY(seed, step)
		case s.is(j, "identity") && s.punct(j+1, "("):
			end := s.closing(j + 1)
			r := s.splitCommas(j+2, end)
			if len(r) != 2 {
				return "", ColumnAttrs{}, rserr.Syntax(s.tok(j + 1).Text)
			}
			seed, step := s.text(r[0][0], r[0][1]), s.text(r[1][0], r[1][1])
			minValue := ""
			if n, err := strconv.Atoi(seed); err == nil && n < 1 && !strings.HasPrefix(step, "-") {
				minValue = " MINVALUE " + seed // Postgres' default minimum is 1
			}
			parts = append(parts, fmt.Sprintf("GENERATED BY DEFAULT AS IDENTITY (START WITH %s INCREMENT BY %s%s)", seed, step, minValue))
			j = end + 1
		default:
			return "", ColumnAttrs{}, rserr.Syntax(s.tok(j).Text)
		}
	}
	if c := checkClause(typ, nameTok.Text, suffix, n); c != "" {
		parts = append(parts, c)
	}
	return strings.Join(parts, " "), attrs, nil
}

func constraintStart(s stmt, k int) bool {
	switch strings.ToLower(s.tok(k).Text) {
	case "not":
		return s.is(k+1, "null")
	case "null", "primary", "unique", "encode", "distkey", "sortkey", "references", "identity", "collate":
		return true
	}
	return false
}

// translateAlter handles ALTER TABLE: one ADD or DROP COLUMN per statement,
// ALTER COLUMN TYPE as its own kind; rejects ALTER SEQUENCE.
func translateAlter(s stmt, opt Options) (Stmt, error) {
	if s.is(1, "sequence") || s.is(1, "index") || s.is(1, "type") || s.is(1, "domain") {
		return Stmt{}, rserr.Syntax(s.tok(1).Text)
	}
	if s.is(1, "database") && s.is(3, "isolation") {
		// ALTER DATABASE name ISOLATION LEVEL { SNAPSHOT | SERIALIZABLE }
		if !s.is(4, "level") {
			return Stmt{}, rserr.Syntax(s.tok(4).Text)
		}
		level := strings.ToLower(s.tok(5).Text)
		if (level != Snapshot && level != Serializable) || len(s.sig) != 6 {
			return Stmt{}, rserr.Syntax(s.tok(5).Text)
		}
		return Stmt{Kind: SetIsolation, Setting: s.tok(2).IdentValue(), Isolation: level}, nil
	}
	if !s.is(1, "table") {
		return Stmt{Kind: Passthrough, SQL: s.text(0, len(s.sig))}, nil
	}
	i := 2
	if s.is(i, "if") && s.is(i+1, "exists") {
		i += 2
	}
	nameStart := i
	for i < len(s.sig) && (s.tok(i).Kind == sqltok.QuotedIdent || s.tok(i).Kind == sqltok.Ident || s.punct(i, ".")) {
		if s.tok(i).Kind == sqltok.Ident && i > nameStart && !s.punct(i-1, ".") {
			break
		}
		i++
	}
	table := s.text(nameStart, i)
	action := i
	for _, r := range s.splitCommas(action, len(s.sig)) {
		if r[0] != action {
			return Stmt{}, rserr.Syntax(",")
		}
	}
	switch {
	case s.is(action, "add") && !s.is(action+1, "constraint") && !s.is(action+1, "primary") && !s.is(action+1, "unique") && !s.is(action+1, "foreign"):
		c := action + 1
		if s.is(c, "column") {
			c++
		}
		if s.is(c, "if") {
			return Stmt{}, rserr.Syntax(s.tok(c).Text)
		}
		def, _, err := columnDef(s, c, len(s.sig), opt.Suffix, 0)
		if err != nil {
			return Stmt{}, err
		}
		return Stmt{Kind: Passthrough, SQL: s.text(0, c) + " " + def}, nil
	case s.is(action, "add"):
		// unenforced constraints, recorded for the ALTER rules
		if cols := constraintColumns(s, action+1, len(s.sig)); len(cols) > 0 {
			return Stmt{Kind: AddConstraint, Constraint: &Constraint{Table: table, Columns: cols}}, nil
		}
		return Stmt{Kind: NoOp, Tag: "ALTER TABLE"}, nil
	case s.is(action, "drop") && !s.is(action+1, "constraint"):
		c := action + 1
		if s.is(c, "column") {
			c++
		}
		return Stmt{Kind: DropColumn, SQL: s.text(0, len(s.sig)),
			Alter: &AlterColumn{Table: table, Column: s.tok(c).IdentValue(), ColumnSQL: s.tok(c).Text}}, nil
	case s.is(action, "alter"):
		c := action + 1
		if s.is(c, "column") {
			c++
		}
		col := s.tok(c).IdentValue()
		if !s.is(c+1, "type") {
			if s.is(c+1, "encode") {
				return Stmt{Kind: NoOp, Tag: "ALTER TABLE"}, nil
			}
			return Stmt{}, rserr.Syntax(s.tok(c + 1).Text)
		}
		typ, end, err := parseType(s, c+2, col)
		if err != nil {
			if e, ok := err.(*rserr.Error); ok && e.Code == rserr.FeatureNotSupported {
				return Stmt{}, rserr.New(rserr.FeatureNotSupported, "target data type %q is not supported", strings.ToLower(s.text(c+2, len(s.sig))))
			}
			return Stmt{}, err
		}
		if end != len(s.sig) {
			return Stmt{}, rserr.Syntax(s.tok(end).Text)
		}
		if typ.Class != Varchar {
			return Stmt{}, rserr.New(rserr.FeatureNotSupported, "target data type %q is not supported", typ.String())
		}
		return Stmt{
			Kind:  AlterColumnType,
			Alter: &AlterColumn{Table: table, Column: col, ColumnSQL: s.tok(c).Text, NewType: typ},
		}, nil
	}
	return Stmt{Kind: Passthrough, SQL: s.text(0, len(s.sig))}, nil
}
