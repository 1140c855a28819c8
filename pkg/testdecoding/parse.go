package testdecoding

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Parse parses one record's text (without its trailing newline). The text may
// contain newlines inside quoted literals and message contents.
func Parse(text []byte) (Record, error) {
	var rec Record
	err := ParseInto(text, &rec)
	return rec, err
}

// ParseInto is Parse into rec, reusing the backing arrays of rec's slices.
// Every string in rec is carved out of a single copy of text made per record
// (literals with doubled quotes get their own), so rec never aliases text.
// On error rec holds what was parsed before the error.
func ParseInto(text []byte, rec *Record) error {
	cols, old, tables := rec.Columns[:0], rec.OldKey[:0], rec.Tables[:0]
	*rec = Record{}
	rec.Columns, rec.OldKey, rec.Tables = cols, old, tables

	switch {
	case hasPrefix(text, "table "):
		p := parser{s: string(text), pos: len("table ")}
		return p.change(rec)
	case hasPrefix(text, "BEGIN"):
		rec.Kind = KindBegin
		return parseBegin(text, rec)
	case hasPrefix(text, "COMMIT"):
		rec.Kind = KindCommit
		return parseCommit(text, rec)
	case hasPrefix(text, "message: "):
		rec.Kind = KindMessage
		return parseMessage(string(text), rec)
	}
	return &ParseError{Reason: "unknown record: want BEGIN, COMMIT, table or message"}
}

func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

// parseXID parses the decimal xid at the start of b and returns it and the
// number of bytes it took.
func parseXID(b []byte) (uint32, int, bool) {
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	if n == 0 || n > 10 || (n > 1 && b[0] == '0') {
		return 0, 0, false
	}
	var v uint64 // at most 10 digits: no overflow
	for _, c := range b[:n] {
		v = v*10 + uint64(c-'0')
	}
	if v > math.MaxUint32 {
		return 0, 0, false
	}
	return uint32(v), n, true
}

func parseBegin(text []byte, rec *Record) error {
	i := len("BEGIN")
	if i == len(text) {
		return nil
	}
	if text[i] != ' ' {
		return &ParseError{Offset: i, Reason: "expected space or end after BEGIN"}
	}
	i++
	xid, n, ok := parseXID(text[i:])
	if !ok {
		return &ParseError{Offset: i, Reason: "bad transaction id"}
	}
	i += n
	if i != len(text) {
		return &ParseError{Offset: i, Reason: "unexpected text after BEGIN"}
	}
	rec.XID = xid
	return nil
}

func parseCommit(text []byte, rec *Record) error {
	i := len("COMMIT")
	if i == len(text) {
		return nil
	}
	if text[i] != ' ' {
		return &ParseError{Offset: i, Reason: "expected space or end after COMMIT"}
	}
	i++
	if i < len(text) && text[i] != '(' {
		xid, n, ok := parseXID(text[i:])
		if !ok {
			return &ParseError{Offset: i, Reason: "bad transaction id"}
		}
		rec.XID = xid
		i += n
		if i == len(text) {
			return nil
		}
		if text[i] != ' ' {
			return &ParseError{Offset: i, Reason: "unexpected text after transaction id"}
		}
		i++
	}
	if !hasPrefix(text[i:], "(at ") {
		return &ParseError{Offset: i, Reason: `expected "(at <time>)"`}
	}
	i += len("(at ")
	if text[len(text)-1] != ')' || len(text)-1 < i {
		return &ParseError{Offset: len(text), Reason: `unterminated "(at <time>)"`}
	}
	t, err := parseTimestamptz(string(text[i : len(text)-1]))
	if err != nil {
		return &ParseError{Offset: i, Reason: "bad commit time: " + err.Error()}
	}
	rec.CommitTime = t
	return nil
}

type timeError string

func (e timeError) Error() string { return string(e) }

// parseTimestamptz parses Postgres' ISO timestamptz output as
// timestamptz_to_str prints it: YYYY-MM-DD HH:MM:SS[.ffffff]±HH[:MM[:SS]][ BC].
// Infinite times are rejected: no transaction commits at infinity.
func parseTimestamptz(s string) (time.Time, error) {
	bc := false
	if strings.HasSuffix(s, " BC") {
		bc = true
		s = s[:len(s)-3]
	}
	i := 0
	num := func(min, max int) (int, bool) {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' && i-start < max {
			i++
		}
		if i-start < min {
			return 0, false
		}
		v, _ := strconv.Atoi(s[start:i])
		return v, true
	}
	sep := func(c byte) bool {
		if i < len(s) && s[i] == c {
			i++
			return true
		}
		return false
	}
	year, ok := num(4, 9)
	if !ok || !sep('-') {
		return time.Time{}, timeError("bad year")
	}
	month, ok := num(2, 2)
	if !ok || !sep('-') || month < 1 || month > 12 {
		return time.Time{}, timeError("bad month")
	}
	day, ok := num(2, 2)
	if !ok || !sep(' ') || day < 1 || day > 31 {
		return time.Time{}, timeError("bad day")
	}
	hour, ok := num(2, 2)
	if !ok || !sep(':') || hour > 24 {
		return time.Time{}, timeError("bad hour")
	}
	minute, ok := num(2, 2)
	if !ok || !sep(':') || minute > 59 {
		return time.Time{}, timeError("bad minute")
	}
	sec, ok := num(2, 2)
	if !ok || sec > 60 {
		return time.Time{}, timeError("bad second")
	}
	nsec := 0
	if sep('.') {
		start := i
		frac, ok := num(1, 6) // Postgres prints at most microseconds
		if !ok {
			return time.Time{}, timeError("bad fraction")
		}
		for d := i - start; d < 9; d++ {
			frac *= 10
		}
		nsec = frac
	}
	if i >= len(s) || (s[i] != '+' && s[i] != '-') {
		return time.Time{}, timeError("missing time zone offset")
	}
	sign := 1
	if s[i] == '-' {
		sign = -1
	}
	i++
	oh, ok := num(2, 2)
	if !ok {
		return time.Time{}, timeError("bad time zone offset")
	}
	off := oh * 3600
	if sep(':') {
		om, ok := num(2, 2)
		if !ok {
			return time.Time{}, timeError("bad time zone offset")
		}
		off += om * 60
		if sep(':') {
			os, ok := num(2, 2)
			if !ok {
				return time.Time{}, timeError("bad time zone offset")
			}
			off += os
		}
	}
	if i != len(s) {
		return time.Time{}, timeError("unexpected text after time")
	}
	if bc {
		year = 1 - year // 1 BC is year 0
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(sign*off) * time.Second), nil
}

// parseMessage parses
// "message: transactional: %d prefix: %s, sz: %zu content:" + content.
// The prefix is printed raw, so the header is the first ", sz: N content:"
// whose N equals the number of bytes that follow it.
func parseMessage(s string, rec *Record) error {
	i := len("message: ")
	const tr = "transactional: "
	if !strings.HasPrefix(s[i:], tr) {
		return &ParseError{Offset: i, Reason: `expected "transactional: "`}
	}
	i += len(tr)
	switch {
	case strings.HasPrefix(s[i:], "1"):
		rec.Transactional = true
	case strings.HasPrefix(s[i:], "0"):
	default:
		return &ParseError{Offset: i, Reason: "transactional flag is not 0 or 1"}
	}
	i++
	const pr = " prefix: "
	if !strings.HasPrefix(s[i:], pr) {
		return &ParseError{Offset: i, Reason: `expected " prefix: "`}
	}
	i += len(pr)
	prefixStart := i
	firstBad := -1
	for j := i; ; {
		k := strings.Index(s[j:], ", sz: ")
		if k < 0 {
			break
		}
		at := j + k
		j = at + 1
		n, contentStart, ok := messageSize(s, at)
		if !ok {
			continue
		}
		if n == len(s)-contentStart {
			rec.Prefix = s[prefixStart:at]
			rec.Content = s[contentStart:]
			return nil
		}
		if firstBad < 0 {
			firstBad = at
		}
	}
	if firstBad >= 0 {
		return &ParseError{Offset: firstBad, Reason: "message content length does not match sz"}
	}
	return &ParseError{Offset: prefixStart, Reason: `missing ", sz: <n> content:"`}
}

// messageSize reads ", sz: N content:" at s[at:] and returns N and where the
// content starts.
func messageSize(s string, at int) (int, int, bool) {
	i := at + len(", sz: ")
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == start || i-start > 18 || (i-start > 1 && s[start] == '0') {
		return 0, 0, false
	}
	n, err := strconv.Atoi(s[start:i])
	if err != nil || !strings.HasPrefix(s[i:], " content:") {
		return 0, 0, false
	}
	return n, i + len(" content:"), true
}

// parser parses a "table ..." record held in s.
type parser struct {
	s   string
	pos int
	rec *Record
}

func (p *parser) fail(at int, reason string) error {
	e := &ParseError{Offset: at, Reason: reason}
	if p.rec != nil {
		if p.rec.Kind == KindTruncate || len(p.rec.Tables) > 0 {
			names := make([]string, len(p.rec.Tables))
			for i, t := range p.rec.Tables {
				names[i] = t.String()
			}
			e.Table = strings.Join(names, ", ")
		} else if p.rec.Table != (Table{}) {
			e.Table = p.rec.Table.String()
		}
	}
	return e
}

func (p *parser) consume(lit string) bool {
	if strings.HasPrefix(p.s[p.pos:], lit) {
		p.pos += len(lit)
		return true
	}
	return false
}

// change parses the rest of a "table ..." record.
func (p *parser) change(rec *Record) error {
	p.rec = rec
	var first Table
	n := 0
	for {
		t, err := p.qualifiedName()
		if err != nil {
			return err
		}
		n++
		if n == 1 {
			first = t
			rec.Table = t
		} else {
			if n == 2 {
				rec.Tables = append(rec.Tables, first)
				rec.Table = Table{}
			}
			rec.Tables = append(rec.Tables, t)
		}
		if p.consume(", ") {
			continue
		}
		if p.consume(": ") {
			break
		}
		return p.fail(p.pos, `expected ": " or ", " after table name`)
	}
	at := p.pos
	switch {
	case p.consume("INSERT:"):
		rec.Kind = KindInsert
	case p.consume("UPDATE:"):
		rec.Kind = KindUpdate
	case p.consume("DELETE:"):
		rec.Kind = KindDelete
	case p.consume("TRUNCATE:"):
		rec.Kind = KindTruncate
		if n == 1 {
			rec.Tables = append(rec.Tables, first)
			rec.Table = Table{}
		}
		return p.truncate()
	default:
		return p.fail(at, "unknown action: want INSERT, UPDATE, DELETE or TRUNCATE")
	}
	if n > 1 {
		return p.fail(at, rec.Kind.String()+" names more than one table")
	}
	if rec.Kind == KindUpdate && p.consume(" old-key:") {
		rec.HasOldKey = true
		var err error
		if rec.OldKey, err = p.columns(rec.OldKey, true); err != nil {
			return err
		}
		if !p.consume(" new-tuple:") {
			return p.fail(p.pos, `expected " new-tuple:"`)
		}
	}
	if p.consume(" (no-tuple-data)") {
		rec.NoTupleData = true
		if p.pos != len(p.s) {
			return p.fail(p.pos, "unexpected text after (no-tuple-data)")
		}
		return nil
	}
	var err error
	rec.Columns, err = p.columns(rec.Columns, false)
	return err
}

func (p *parser) truncate() error {
	if p.consume(" (no-flags)") {
		if p.pos != len(p.s) {
			return p.fail(p.pos, "unexpected text after (no-flags)")
		}
		return nil
	}
	if p.consume(" restart_seqs") {
		p.rec.Restart = true
	}
	if p.consume(" cascade") {
		p.rec.Cascade = true
	}
	if !p.rec.Restart && !p.rec.Cascade {
		return p.fail(p.pos, "expected restart_seqs, cascade or (no-flags)")
	}
	if p.pos != len(p.s) {
		return p.fail(p.pos, "unexpected text after TRUNCATE flags")
	}
	return nil
}

// qualifiedName parses schema.name.
func (p *parser) qualifiedName() (Table, error) {
	schema, err := p.ident()
	if err != nil {
		return Table{}, err
	}
	if !p.consume(".") {
		return Table{}, p.fail(p.pos, `expected "." between schema and table name`)
	}
	name, err := p.ident()
	if err != nil {
		return Table{}, err
	}
	return Table{Schema: schema, Name: name}, nil
}

// bareIdent marks the bytes that may appear in an unquoted identifier.
// quote_identifier leaves only [a-z0-9_] bare; upper case, $ and non-ASCII
// bytes are accepted too so that hand-written input parses.
var bareIdent = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' ||
			c >= 'A' && c <= 'Z' || c == '$' || c >= 0x80
	}
	return t
}()

// ident parses a bare or double-quoted identifier.
func (p *parser) ident() (string, error) {
	s := p.s
	start := p.pos
	if start < len(s) && s[start] == '"' {
		return p.quoted('"', "unterminated quoted identifier")
	}
	i := start
	for i < len(s) && bareIdent[s[i]] {
		i++
	}
	if i == start {
		return "", p.fail(start, "expected identifier")
	}
	p.pos = i
	return s[start:i], nil
}

// quoted parses a literal enclosed in q with q doubled inside, starting at
// p.pos, and returns its unescaped text.
func (p *parser) quoted(q byte, unterminated string) (string, error) {
	s := p.s
	start := p.pos
	i := start + 1
	doubled := false
	for {
		k := strings.IndexByte(s[i:], q)
		if k < 0 {
			return "", p.fail(start, unterminated)
		}
		i += k + 1
		if i < len(s) && s[i] == q {
			doubled = true
			i++
			continue
		}
		break
	}
	p.pos = i
	v := s[start+1 : i-1]
	if doubled {
		v = undouble(v, q)
	}
	return v, nil
}

func undouble(v string, q byte) string {
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		b.WriteByte(v[i])
		if v[i] == q {
			i++
		}
	}
	return b.String()
}

// columns parses " name[type]:value" repeated until the end of the record or,
// when inOldKey, until " new-tuple:".
func (p *parser) columns(dst []Column, inOldKey bool) ([]Column, error) {
	s := p.s
	for p.pos < len(s) {
		if inOldKey && strings.HasPrefix(s[p.pos:], " new-tuple:") {
			return dst, nil
		}
		if s[p.pos] != ' ' {
			return dst, p.fail(p.pos, "expected space before column")
		}
		p.pos++
		// Fill the column in place: reused slices keep their arrays.
		n := len(dst)
		if n < cap(dst) {
			dst = dst[:n+1]
		} else {
			dst = append(dst, Column{})
		}
		c := &dst[n]
		if p.columnFast(c) {
			continue
		}
		var err error
		if c.Name, err = p.ident(); err != nil {
			return dst[:n], err
		}
		if p.pos >= len(s) || s[p.pos] != '[' {
			return dst[:n], p.fail(p.pos, `expected "[" after column name`)
		}
		p.pos++
		if c.Type, err = p.typeName(); err != nil {
			return dst[:n], err
		}
		if err = p.value(c); err != nil {
			return dst[:n], err
		}
	}
	if inOldKey {
		return dst, p.fail(p.pos, `expected " new-tuple:"`)
	}
	return dst, nil
}

// columnFast parses one column of the common shape (a bare name, a type
// without quotes, a quoted literal or a quote-free bare value) with locals
// only. It returns false, having changed nothing but c, for anything else,
// errors included: the general path then parses the column from the start.
func (p *parser) columnFast(c *Column) bool {
	s := p.s
	i := p.pos
	j := i
	for j < len(s) && bareIdent[s[j]] {
		j++
	}
	if j == i || j >= len(s) || s[j] != '[' {
		return false
	}
	name := s[i:j]
	j++
	t := j
	for {
		if j >= len(s) {
			return false
		}
		ch := s[j]
		if ch == ']' {
			if j+1 < len(s) && s[j+1] == ':' {
				break
			}
		} else if ch == '"' || ch == '\'' || ch == '\n' {
			return false
		}
		j++
	}
	if j == t {
		return false
	}
	typ := s[t:j]
	j += 2
	if j >= len(s) {
		return false
	}
	// A reused slot usually holds the same column of the previous record:
	// keeping its equal strings skips two pointer stores (and their GC
	// write barriers) per column.
	if c.Name != name {
		c.Name = name
	}
	if c.Type != typ {
		c.Type = typ
	}
	if s[j] == '\'' {
		k := j + 1
		doubled := false
		for {
			e := strings.IndexByte(s[k:], '\'')
			if e < 0 {
				return false
			}
			k += e + 1
			if k < len(s) && s[k] == '\'' {
				doubled = true
				k++
				continue
			}
			break
		}
		if k < len(s) && s[k] != ' ' {
			return false
		}
		v := s[j+1 : k-1]
		if doubled {
			v = undouble(v, '\'')
		}
		c.Value, c.Null, c.Unchanged, c.Quoted = v, false, false, true
		p.pos = k
		return true
	}
	k := j
	for k < len(s) && s[k] != ' ' {
		if ch := s[k]; ch == '\'' || ch == '"' || ch == '\n' {
			return false
		}
		k++
	}
	if k == j {
		return false
	}
	v := s[j:k]
	c.Value, c.Null, c.Unchanged, c.Quoted = v, false, false, false
	switch v {
	case "null":
		c.Value, c.Null = "", true
	case "unchanged-toast-datum":
		c.Value, c.Unchanged = "", true
	}
	p.pos = k
	return true
}

// typeName returns the text up to the first "]:" outside double quotes and
// moves past the "]:". format_type never prints a single quote or a newline
// outside double quotes; they are rejected so that a Reader, which tracks
// quotes to find where a record ends, agrees with the parser.
func (p *parser) typeName() (string, error) {
	s := p.s
	start := p.pos
	for i := start; i < len(s); i++ {
		switch s[i] {
		case ']':
			if i+1 < len(s) && s[i+1] == ':' {
				if i == start {
					return "", p.fail(start, "empty column type")
				}
				p.pos = i + 2
				return s[start:i], nil
			}
		case '"':
			j := i + 1
			for {
				e := strings.IndexByte(s[j:], '"')
				if e < 0 {
					return "", p.fail(i, "unterminated quoted name in column type")
				}
				j += e + 1
				if j < len(s) && s[j] == '"' {
					j++
					continue
				}
				break
			}
			i = j - 1
		case '\'', '\n':
			return "", p.fail(i, "unexpected quote or newline in column type")
		}
	}
	return "", p.fail(start, `unterminated column type: no "]:"`)
}

// value parses a column value: null, unchanged-toast-datum, a quoted literal
// or a bare literal running to the next space. It sets every value field of
// c, which may hold an earlier record's column.
func (p *parser) value(c *Column) error {
	s := p.s
	start := p.pos
	c.Value, c.Null, c.Unchanged, c.Quoted = "", false, false, false
	if start < len(s) && s[start] == '\'' {
		v, err := p.quoted('\'', "unterminated quoted literal")
		if err != nil {
			return err
		}
		if p.pos < len(s) && s[p.pos] != ' ' {
			return p.fail(p.pos, "unexpected text after quoted literal")
		}
		c.Value, c.Quoted = v, true
		return nil
	}
	// A bare literal runs to the next space. Postgres prints only numbers,
	// booleans and B'...' bit strings bare, so quotes must pair up and
	// newlines cannot occur (a Reader relies on both).
	end := start
	squotes := 0
loop:
	for ; end < len(s); end++ {
		switch s[end] {
		case ' ':
			break loop
		case '\'':
			squotes++
		case '"', '\n':
			return p.fail(end, "unexpected quote or newline in bare literal")
		}
	}
	if squotes%2 != 0 {
		return p.fail(start, "unterminated quote in bare literal")
	}
	v := s[start:end]
	switch v {
	case "":
		return p.fail(start, "missing column value")
	case "null":
		c.Null = true
	case "unchanged-toast-datum":
		c.Unchanged = true
	default:
		c.Value = v
	}
	p.pos = end
	return nil
}
