// Package translate turns one Redshift SQL statement into the Postgres SQL
// that emulates it, or into the error Redshift would raise. It is pure: no
// I/O, every rule pinned by exact-string tests.
//
// What it does, statement by statement:
//   - identifiers: unquoted ones fold to lower case (as in Postgres); quoted
//     ones fold too unless the session enabled
//     enable_case_sensitive_identifier; any identifier longer than 127 bytes
//     is an error; one longer than Postgres' 63 bytes is renamed to a
//     deterministic 63-byte name (first bytes + "_" + 16 hex of SHA-256).
//   - CREATE TABLE / ALTER TABLE ADD COLUMN: Redshift types only, each
//     column with a named CHECK constraint that enforces Redshift's value
//     rule (VARCHAR/CHAR lengths in bytes, date and timestamp ranges; see
//     Type.Check); Redshift's table attributes (DISTSTYLE, DISTKEY,
//     SORTKEY, ENCODE) come back as a CreateTable for the server's catalog,
//     BACKUP and unenforced constraints (PRIMARY KEY, UNIQUE, REFERENCES)
//     are dropped from the SQL; the columns of the last three are recorded
//     (CreateTable.Constrained, AddConstraint) for the ALTER rules.
//   - writes name the table they write (Stmt.WriteTable) for the server's
//     table write lock; LOCK, ALTER DATABASE … ISOLATION LEVEL and DROP
//     COLUMN are kinds of their own.
//   - statements and clauses Redshift lacks are rejected.
//   - COPY, TRUNCATE, ALTER COLUMN TYPE and the session settings the server
//     emulates itself come back as their own kinds.
package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"

	"github.com/redms/redms/services/rsemu/internal/rserr"
	"github.com/redms/redms/services/rsemu/internal/sqltok"
)

// Limits Redshift applies.
const (
	MaxIdentBytes   = 127
	pgMaxIdentBytes = 63
	MaxVarchar      = 65535
	MaxChar         = 4096
	MaxPrecision    = 38
	MaxScale        = 37
	// Schema holds the emulator's own objects in the backing database.
	Schema = "rsemu"
)

// Options is the session state translation depends on.
type Options struct {
	CaseSensitive bool // enable_case_sensitive_identifier
	// Suffix makes the names of the constraints a statement creates unique
	// within their table (a column renamed keeps its constraint's name).
	Suffix string
}

// Kind says how the server runs a statement.
type Kind int

// Statement kinds.
const (
	Passthrough      Kind = iota // run SQL on the backing database
	Copy                         // COPY from S3: Stmt.Copy
	Truncate                     // commit the open transaction, then run SQL
	AlterColumnType              // outside a transaction block only: check Stmt.Alter, then run AlterVarchar
	SetCaseSensitive             // set the session's enable_case_sensitive_identifier to Stmt.Value
	Show                         // answer SHOW Stmt.Setting with the session's value
	NoOp                         // accepted and ignored; answer with Stmt.Tag
	Lock                         // run SQL (LOCK … IN ACCESS EXCLUSIVE MODE) inside a transaction block
	SetIsolation                 // ALTER DATABASE Stmt.Setting ISOLATION LEVEL Stmt.Isolation
	Create                       // CREATE TABLE: run SQL, then record Stmt.Create (CatalogSQL)
	DropColumn                   // check Stmt.Alter against the catalog's rules, then run SQL
	AddConstraint                // record Stmt.Constraint in the catalog (not enforced)
)

// Isolation levels of ALTER DATABASE … ISOLATION LEVEL.
const (
	Snapshot     = "snapshot"
	Serializable = "serializable"
)

// Stmt is one translated statement.
type Stmt struct {
	Kind Kind
	SQL  string // Postgres SQL to run (Passthrough, Truncate)
	// LastCopyCount is set when SQL calls rsemu.pg_last_copy_count(): the
	// server must publish the session's count first.
	LastCopyCount bool
	Copy          *CopyStmt
	Alter         *AlterColumn // AlterColumnType, DropColumn
	Create        *CreateTable
	Constraint    *Constraint // AddConstraint
	Value         bool        // SetCaseSensitive
	Setting       string      // Show; SetIsolation: the database
	Isolation     string      // SetIsolation: Snapshot or Serializable
	Tag           string      // NoOp command tag
	// WriteTable is the table the statement writes (INSERT, UPDATE,
	// DELETE, MERGE, COPY), as rendered: the server takes Redshift's
	// table write lock on it first, held until commit.
	WriteTable string
}

// NeedsBlock reports a statement that runs inside a transaction block,
// opened for it when the session has none: a write (its table lock lasts
// until commit) or LOCK.
func (st Stmt) NeedsBlock() bool { return st.WriteTable != "" || st.Kind == Lock || st.Kind == Create }

// WriteLockSQL takes Redshift's table write lock on table: writers queue,
// readers do not wait. A lock taken before the transaction's first query
// leaves its snapshot to begin after the wait, as on Redshift.
func WriteLockSQL(table string) string {
	return "LOCK TABLE " + table + " IN SHARE ROW EXCLUSIVE MODE"
}

// AlterColumn is ALTER TABLE … ALTER COLUMN … TYPE VARCHAR(n).
type AlterColumn struct {
	Table     string // rendered (translated) table name
	Column    string // column name as stored
	ColumnSQL string // column name as rendered
	NewType   Type
}

// MaxStatementBytes is the largest SQL statement (query string) Redshift
// takes: 16 MB.
const MaxStatementBytes = 16 << 20

// Split tokenizes sql and splits it into statements. A query string over
// MaxStatementBytes is Redshift's "Statement is too large" (54000).
func Split(sql string) ([][]sqltok.Token, error) {
	if len(sql) > MaxStatementBytes {
		return nil, rserr.New(rserr.ProgramLimitExceeded, "Statement is too large. Statement Size: %d bytes. Maximum Allowed: %d bytes", len(sql), MaxStatementBytes)
	}
	toks, err := sqltok.Tokenize(sql)
	if err != nil {
		return nil, rserr.New(rserr.SyntaxError, "%s", err.Error())
	}
	return sqltok.SplitStatements(toks), nil
}

// Translate translates one statement (as returned by Split).
func Translate(toks []sqltok.Token, opt Options) (Stmt, error) {
	toks, err := rewriteIdents(toks, opt)
	if err != nil {
		return Stmt{}, err
	}
	s := newStmt(toks)
	if len(s.sig) == 0 {
		return Stmt{Kind: Passthrough}, nil
	}
	if err := rejectEverywhere(s); err != nil {
		return Stmt{}, err
	}
	lastCopy := usesLastCopyCount(s)
	var out Stmt
	switch {
	case s.is(0, "create"):
		out, err = translateCreate(s, opt)
	case s.is(0, "alter"):
		out, err = translateAlter(s, opt)
	case s.is(0, "copy"):
		out, err = translateCopy(s)
	case s.is(0, "truncate"):
		out = Stmt{Kind: Truncate, SQL: s.text(0, len(s.sig))}
	case s.is(0, "set"), s.is(0, "reset"):
		out, err = translateSet(s)
	case s.is(0, "show"):
		out, err = translateShow(s)
	case s.is(0, "merge"):
		out, err = translateMerge(s)
	case s.is(0, "unload"):
		err = rserr.New(rserr.FeatureNotSupported, "UNLOAD is not supported by the Redshift emulator")
	case s.is(0, "vacuum"):
		out = Stmt{Kind: NoOp, Tag: "VACUUM"}
	case s.is(0, "lock"):
		out, err = translateLock(s)
	default:
		out = Stmt{Kind: Passthrough, SQL: s.text(0, len(s.sig)), WriteTable: writeTarget(s)}
	}
	if err != nil {
		return Stmt{}, err
	}
	out.LastCopyCount = lastCopy
	if out.Kind == Copy {
		out.WriteTable = out.Copy.Table
	}
	return out, nil
}

// nameEnd returns the index after the (possibly qualified) name that
// starts at significant token i, i itself when there is none.
func (s stmt) nameEnd(i int) int {
	j := i
	for {
		t := s.tok(j)
		if t.Kind != sqltok.Ident && t.Kind != sqltok.QuotedIdent {
			return j
		}
		j++
		if !s.punct(j, ".") {
			return j
		}
		j++
	}
}

// writeTarget is the table a DML statement writes, "" for other
// statements (and for WITH … INSERT, which the emulator does not lock).
func writeTarget(s stmt) string {
	i := -1
	switch {
	case s.is(0, "insert") && s.is(1, "into"), s.is(0, "delete") && s.is(1, "from"), s.is(0, "merge") && s.is(1, "into"):
		i = 2
	case s.is(0, "update"):
		i = 1
	}
	if i < 0 {
		return ""
	}
	if s.is(i, "only") {
		i++
	}
	if end := s.nameEnd(i); end > i {
		return s.text(i, end)
	}
	return ""
}

// translateLock accepts Redshift's LOCK [TABLE] name [, ...]: an ACCESS
// EXCLUSIVE lock on each table until the transaction ends.
func translateLock(s stmt) (Stmt, error) {
	i := 1
	if s.is(i, "table") {
		i++
	}
	var names []string
	for {
		end := s.nameEnd(i)
		if end == i {
			return Stmt{}, rserr.Syntax(s.tok(i).Text)
		}
		names = append(names, s.text(i, end))
		i = end
		if !s.punct(i, ",") {
			break
		}
		i++
	}
	if i < len(s.sig) {
		return Stmt{}, rserr.Syntax(s.tok(i).Text)
	}
	return Stmt{Kind: Lock, SQL: "LOCK TABLE " + strings.Join(names, ", ") + " IN ACCESS EXCLUSIVE MODE"}, nil
}

// stmt is a statement's tokens with an index of its significant ones.
type stmt struct {
	toks []sqltok.Token
	sig  []int // indexes into toks of non-space, non-comment tokens
}

func newStmt(toks []sqltok.Token) stmt {
	s := stmt{toks: toks}
	for i, t := range toks {
		if t.Kind != sqltok.Space && t.Kind != sqltok.Comment {
			s.sig = append(s.sig, i)
		}
	}
	return s
}

// tok is significant token i (a zero Token past the end).
func (s stmt) tok(i int) sqltok.Token {
	if i < 0 || i >= len(s.sig) {
		return sqltok.Token{Kind: sqltok.Space}
	}
	return s.toks[s.sig[i]]
}

func (s stmt) is(i int, kw string) bool   { return s.tok(i).Is(kw) }
func (s stmt) punct(i int, p string) bool { return s.tok(i).IsPunct(p) }

// text renders significant tokens [a, b) with the spacing between them.
func (s stmt) text(a, b int) string {
	if a >= b || a >= len(s.sig) {
		return ""
	}
	if b > len(s.sig) {
		b = len(s.sig)
	}
	return strings.TrimSpace(sqltok.Join(s.toks[s.sig[a] : s.sig[b-1]+1]))
}

// closing returns the index of the parenthesis closing the one at i.
func (s stmt) closing(i int) int {
	depth := 0
	for j := i; j < len(s.sig); j++ {
		switch {
		case s.punct(j, "("), s.punct(j, "["):
			depth++
		case s.punct(j, ")"), s.punct(j, "]"):
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

// splitCommas splits significant range [a, b) at top-level commas.
func (s stmt) splitCommas(a, b int) [][2]int {
	var out [][2]int
	depth, start := 0, a
	for j := a; j < b; j++ {
		switch {
		case s.punct(j, "("), s.punct(j, "["):
			depth++
		case s.punct(j, ")"), s.punct(j, "]"):
			depth--
		case depth == 0 && s.punct(j, ","):
			out = append(out, [2]int{start, j})
			start = j + 1
		}
	}
	return append(out, [2]int{start, b})
}

// QuoteIdent quotes an identifier for Postgres.
func QuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// QuoteLiteral quotes a string literal for Postgres.
func QuoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// PgName is the name Postgres stores for Redshift identifier id: id itself
// up to 63 bytes, else its first bytes (at a UTF-8 boundary) + "_" + 16 hex
// digits of its SHA-256, 63 bytes at most.
func PgName(id string) string {
	if len(id) <= pgMaxIdentBytes {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	cut := pgMaxIdentBytes - 17
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return id[:cut] + "_" + hex.EncodeToString(sum[:8])
}

// rewriteIdents folds and checks every identifier and points the Redshift
// system objects the emulator provides at schema rsemu.
func rewriteIdents(toks []sqltok.Token, opt Options) ([]sqltok.Token, error) {
	out := make([]sqltok.Token, len(toks))
	copy(out, toks)
	prevSig := -1
	for i, t := range out {
		switch t.Kind {
		case sqltok.String:
			if t.Text[0] == '\'' {
				// Redshift reads backslash escapes in '…'; Postgres does in E'…'.
				out[i].Text = "E" + t.Text
			}
		case sqltok.Ident, sqltok.QuotedIdent:
			if strings.HasPrefix(t.Text, "U&") || strings.HasPrefix(t.Text, "u&") {
				break
			}
			v := t.IdentValue()
			if t.Kind == sqltok.QuotedIdent && !opt.CaseSensitive {
				v = strings.ToLower(v)
			}
			if len(v) > MaxIdentBytes {
				return nil, rserr.New(rserr.NameTooLong, "identifier %q is too long: %d bytes, Redshift allows %d", v, len(v), MaxIdentBytes)
			}
			qualified := prevSig >= 0 && out[prevSig].IsPunct(".")
			next := nextSig(out, i)
			switch {
			case !qualified && t.Kind == sqltok.Ident && emulatedFuncs[v] && next >= 0 && out[next].IsPunct("("):
				out[i].Text = Schema + "." + v
			case !qualified && t.Kind == sqltok.Ident && (v == "stl_load_errors" || v == "pg_table_def" || v == "svv_table_info"):
				out[i].Text = Schema + "." + v
			case t.Kind == sqltok.Ident && v == "notnull" && prevSig >= 0 && (out[prevSig].IsPunct(",") || out[prevSig].IsPunct(".") || out[prevSig].IsPunct("(") || out[prevSig].Is("select")):
				// pg_table_def's column: a keyword (postfix NOTNULL) in Postgres
				out[i].Text = QuoteIdent(v)
			case len(v) > pgMaxIdentBytes:
				out[i] = sqltok.Token{Kind: sqltok.QuotedIdent, Text: QuoteIdent(PgName(v)), Pos: t.Pos}
			case t.Kind == sqltok.QuotedIdent:
				out[i].Text = QuoteIdent(v)
			}
		}
		if t.Kind != sqltok.Space && t.Kind != sqltok.Comment {
			prevSig = i
		}
	}
	return out, nil
}

// emulatedFuncs are Redshift functions the emulator defines in schema
// rsemu of the backing database.
var emulatedFuncs = map[string]bool{"pg_last_copy_count": true, "json_parse": true, "from_hex": true, "strtol": true, "from_varbyte": true}

func nextSig(toks []sqltok.Token, i int) int {
	for j := i + 1; j < len(toks); j++ {
		if toks[j].Kind != sqltok.Space && toks[j].Kind != sqltok.Comment {
			return j
		}
	}
	return -1
}

func usesLastCopyCount(s stmt) bool {
	for i := range s.sig {
		if s.tok(i).Text == Schema+".pg_last_copy_count" {
			return true
		}
	}
	return false
}

// rejectEverywhere rejects clauses and functions Redshift lacks wherever
// they appear: RETURNING, ON CONFLICT, row locks, sequence functions.
func rejectEverywhere(s stmt) error {
	first := strings.ToLower(s.tok(0).Text)
	dml := first == "insert" || first == "update" || first == "delete" || first == "with" || first == "merge"
	for i := range s.sig {
		t := s.tok(i)
		switch {
		case dml && t.Is("returning"):
			return rserr.Syntax(t.Text)
		case dml && t.Is("on") && s.is(i+1, "conflict"):
			return rserr.Syntax(t.Text)
		case t.Is("for") && (s.is(i+1, "update") || s.is(i+1, "share") || (s.is(i+1, "no") && s.is(i+2, "key")) || (s.is(i+1, "key") && s.is(i+2, "share"))):
			return rserr.Syntax(s.tok(i + 1).Text) // no row locks in Redshift
		case t.Kind == sqltok.Ident && s.punct(i+1, "(") && !s.punct(i-1, "."):
			switch strings.ToLower(t.Text) {
			case "nextval", "currval", "setval", "lastval":
				return rserr.New(rserr.UndefinedFunction, "function %s does not exist", strings.ToLower(t.Text))
			}
		}
	}
	return nil
}

// translateSet handles SET/RESET of enable_case_sensitive_identifier and
// the Redshift-only settings Postgres does not know.
func translateSet(s stmt) (Stmt, error) {
	i := 1
	if s.is(0, "set") && (s.is(1, "session") || s.is(1, "local")) {
		i = 2
	}
	name := strings.ToLower(s.tok(i).IdentValue())
	switch name {
	case "standard_conforming_strings":
		return Stmt{}, unrecognizedParameter(name)
	case "enable_case_sensitive_identifier":
		if s.is(0, "reset") {
			return Stmt{Kind: SetCaseSensitive, Value: false}, nil
		}
		if !s.is(i+1, "to") && !s.punct(i+1, "=") {
			return Stmt{}, rserr.Syntax(s.tok(i + 1).Text)
		}
		v := s.tok(i + 2)
		val, ok := v.StringValue()
		if !ok {
			val = v.Text
		}
		if v.Is("default") {
			return Stmt{Kind: SetCaseSensitive, Value: false}, nil
		}
		switch strings.ToLower(val) {
		case "true", "on", "1", "t", "yes":
			return Stmt{Kind: SetCaseSensitive, Value: true}, nil
		case "false", "off", "0", "f", "no":
			return Stmt{Kind: SetCaseSensitive, Value: false}, nil
		}
		return Stmt{}, rserr.New(rserr.InvalidParameter, "parameter \"enable_case_sensitive_identifier\" requires a Boolean value")
	case "query_group", "wlm_query_slot_count", "enable_result_cache_for_session", "analyze_threshold_percent",
		"auto_analyze", "json_parse_dedup_attributes", "max_concurrency_scaling_clusters", "mv_enable_aqmv_for_session":
		return Stmt{Kind: NoOp, Tag: strings.ToUpper(s.tok(0).Text)}, nil
	}
	return Stmt{Kind: Passthrough, SQL: s.text(0, len(s.sig))}, nil
}

// unrecognizedParameter is Redshift's error for a setting it lacks.
func unrecognizedParameter(name string) error {
	return rserr.New(rserr.UndefinedObject, "unrecognized configuration parameter %q", name)
}

func translateShow(s stmt) (Stmt, error) {
	switch name := strings.ToLower(s.tok(1).IdentValue()); name {
	case "enable_case_sensitive_identifier", "server_version", "client_encoding", "server_encoding":
		return Stmt{Kind: Show, Setting: name}, nil
	case "standard_conforming_strings":
		return Stmt{}, unrecognizedParameter(name)
	}
	return Stmt{Kind: Passthrough, SQL: s.text(0, len(s.sig))}, nil
}

// translateMerge accepts Redshift's MERGE form only:
//
//	MERGE INTO target USING source [[AS] alias] ON cond
//	WHEN MATCHED THEN {UPDATE SET … | DELETE}
//	WHEN NOT MATCHED THEN INSERT [(cols)] VALUES (…)
func translateMerge(s stmt) (Stmt, error) {
	if !s.is(1, "into") {
		return Stmt{}, rserr.Syntax(s.tok(1).Text)
	}
	// target name: ident [. ident]
	i := 2
	for i < len(s.sig) && (s.tok(i).Kind == sqltok.Ident || s.tok(i).Kind == sqltok.QuotedIdent || s.punct(i, ".")) && !s.is(i, "using") {
		if i > 2 && !s.punct(i, ".") && !s.punct(i-1, ".") {
			return Stmt{}, rserr.Syntax(s.tok(i).Text) // a target alias
		}
		i++
	}
	if !s.is(i, "using") {
		return Stmt{}, rserr.Syntax(s.tok(i).Text)
	}
	var whens []int
	depth := 0
	for j := i; j < len(s.sig); j++ {
		switch {
		case s.punct(j, "("):
			depth++
		case s.punct(j, ")"):
			depth--
		case depth == 0 && s.is(j, "when"):
			whens = append(whens, j)
		}
	}
	if len(whens) != 2 {
		return Stmt{}, rserr.New(rserr.SyntaxError, "MERGE needs exactly one WHEN MATCHED and one WHEN NOT MATCHED clause")
	}
	m, n := whens[0], whens[1]
	if !s.is(m+1, "matched") {
		return Stmt{}, rserr.Syntax(s.tok(m + 1).Text)
	}
	if !s.is(m+2, "then") {
		return Stmt{}, rserr.Syntax(s.tok(m + 2).Text)
	}
	if !s.is(m+3, "update") && !s.is(m+3, "delete") {
		return Stmt{}, rserr.Syntax(s.tok(m + 3).Text)
	}
	if !s.is(n+1, "not") || !s.is(n+2, "matched") {
		return Stmt{}, rserr.Syntax(s.tok(n + 1).Text)
	}
	if !s.is(n+3, "then") {
		return Stmt{}, rserr.Syntax(s.tok(n + 3).Text)
	}
	if !s.is(n+4, "insert") {
		return Stmt{}, rserr.Syntax(s.tok(n + 4).Text)
	}
	for j := n + 5; j < len(s.sig); j++ {
		if s.is(j, "default") && s.is(j+1, "values") {
			return Stmt{}, rserr.Syntax(s.tok(j).Text)
		}
	}
	return Stmt{Kind: Passthrough, SQL: s.text(0, len(s.sig))}, nil
}
