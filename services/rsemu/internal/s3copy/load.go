package s3copy

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/redms/redms/services/rsemu/internal/translate"
)

// Redshift load error codes (stl_load_errors.err_code).
const (
	ErrExtraColumn   = 1202
	ErrMissingColumn = 1203
	ErrRange         = 1204
	ErrDate          = 1205
	ErrTimestamp     = 1206
	ErrDigit         = 1207
	ErrFloat         = 1208
	ErrBoolean       = 1210
	ErrNotNull       = 1213
	ErrInvalidLine   = 1216
	ErrHex           = 1219
	ErrUTF8          = 1220
	ErrJSON          = 1224
)

// Column is a target column.
type Column struct {
	Name    string
	Type    translate.Type // Class 0: any other type, loaded as text unchecked
	NotNull bool
	// Length 0 on a Varchar means unlimited (a Postgres text column).
}

// LoadError is one row of stl_load_errors.
type LoadError struct {
	File      string
	Line      int
	Column    string
	Type      string
	ColLength string
	Position  int
	RawLine   string
	RawValue  string
	Code      int
	Reason    string
}

// Batch is the outcome of parsing the files of one COPY.
type Batch struct {
	CSV    bytes.Buffer // good rows as Postgres CSV (NULL = unquoted empty)
	Rows   int
	Errors []LoadError
	Bad    int // rows rejected (Errors is capped)
}

// maxRecorded caps the error rows kept per COPY.
const maxRecorded = 100

// MaxRowBytes is the largest input row Redshift's COPY takes (4 MB), not
// counting the line terminator.
const MaxRowBytes = 4 << 20

// field is one parsed CSV field.
type field struct {
	val    string
	quoted bool
	pos    int // byte offset in the record
}

// Parse parses f's CSV per c into b, checking each value against cols.
func Parse(c *translate.CopyStmt, cols []Column, f File, b *Batch) {
	data := f.Data
	delim, quote := c.Delimiter[0], c.Quote[0]
	pos, line, rec := 0, 1, 0
	for pos < len(data) {
		start, startLine := pos, line
		var fields []field
		var cur []byte
		quoted, fieldStart := false, 0
		bad := ""
		for {
			if pos >= len(data) {
				fields = append(fields, field{val: string(cur), quoted: quoted, pos: fieldStart})
				break
			}
			ch := data[pos]
			if ch == quote && len(cur) == 0 && !quoted {
				quoted = true
				pos++
				closed := false
				for pos < len(data) {
					if data[pos] == quote {
						if pos+1 < len(data) && data[pos+1] == quote {
							cur = append(cur, quote)
							pos += 2
							continue
						}
						pos++
						closed = true
						break
					}
					if data[pos] == '\n' {
						line++
					}
					cur = append(cur, data[pos])
					pos++
				}
				if !closed {
					bad = "Missing quote: unterminated quoted field"
				}
				continue
			}
			if ch == delim {
				fields = append(fields, field{val: string(cur), quoted: quoted, pos: fieldStart})
				cur, quoted = nil, false
				pos++
				fieldStart = pos - start
				continue
			}
			if ch == '\n' || (ch == '\r' && pos+1 < len(data) && data[pos+1] == '\n') {
				fields = append(fields, field{val: string(cur), quoted: quoted, pos: fieldStart})
				if ch == '\r' {
					pos++
				}
				pos++
				line++
				break
			}
			cur = append(cur, ch)
			pos++
		}
		raw := strings.TrimRight(string(data[start:pos]), "\r\n")
		rec++
		if rec <= c.IgnoreHeader {
			continue
		}
		parseRecord(c, cols, f.URL, startLine, raw, fields, bad, b)
	}
}

func parseRecord(c *translate.CopyStmt, cols []Column, file string, line int, raw string, fields []field, bad string, b *Batch) {
	fail := func(col *Column, f *field, code int, reason string) {
		b.Bad++
		if len(b.Errors) >= maxRecorded {
			return
		}
		e := LoadError{File: file, Line: line, RawLine: cut(raw, 1024), Code: code, Reason: cut(reason, 100)}
		if col != nil {
			e.Column, e.Type, e.ColLength = col.Name, typeName(col.Type), colLength(col.Type)
		}
		if f != nil {
			e.RawValue, e.Position = cut(f.val, 1024), f.pos
		}
		b.Errors = append(b.Errors, e)
	}
	if bad != "" {
		fail(nil, nil, ErrInvalidLine, bad)
		return
	}
	if len(raw) > MaxRowBytes {
		fail(nil, nil, ErrInvalidLine, fmt.Sprintf("Row size %d exceeds the maximum of %d bytes", len(raw), MaxRowBytes))
		return
	}
	if len(fields) > len(cols) {
		fail(&cols[len(cols)-1], &fields[len(cols)], ErrExtraColumn, "Extra column(s) found")
		return
	}
	if len(fields) < len(cols) {
		fail(&cols[len(fields)], nil, ErrMissingColumn, "Delimiter not found")
		return
	}
	out := make([]*string, len(cols))
	for i := range cols {
		v, code, reason := convert(c, &cols[i], fields[i])
		if code == 0 && v == nil && cols[i].NotNull {
			code, reason = ErrNotNull, "Missing data for not-null field"
		}
		if code != 0 {
			fail(&cols[i], &fields[i], code, reason)
			return
		}
		out[i] = v
	}
	for i, v := range out {
		if i > 0 {
			b.CSV.WriteByte(',')
		}
		if v != nil {
			b.CSV.WriteByte('"')
			b.CSV.WriteString(strings.ReplaceAll(*v, `"`, `""`))
			b.CSV.WriteByte('"')
		}
	}
	b.CSV.WriteByte('\n')
	b.Rows++
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func typeName(t translate.Type) string {
	switch t.Class {
	case translate.SmallInt:
		return "int2"
	case translate.Integer:
		return "int4"
	case translate.BigInt:
		return "int8"
	case translate.Numeric:
		return "numeric"
	case translate.Real:
		return "float4"
	case translate.Double:
		return "float8"
	case translate.Boolean:
		return "bool"
	case translate.Char:
		return "char"
	case translate.Varchar:
		return "varchar"
	case translate.Date:
		return "date"
	case translate.Timestamp:
		return "timestamp"
	case translate.TimestampTZ:
		return "timestamptz"
	case translate.Time:
		return "time"
	case translate.TimeTZ:
		return "timetz"
	case translate.Super:
		return "super"
	case translate.Varbyte:
		return "varbyte"
	}
	return "other"
}

func colLength(t translate.Type) string {
	switch t.Class {
	case translate.Char, translate.Varchar, translate.Varbyte:
		return strconv.Itoa(t.Length)
	case translate.Numeric:
		return fmt.Sprintf("%d,%d", t.Precision, t.Scale)
	}
	return "0"
}

// convert checks one field against its column; it returns the value to
// load (nil = NULL) or a load error code and reason.
func convert(c *translate.CopyStmt, col *Column, f field) (*string, int, string) {
	v := f.val
	if !f.quoted && v == c.Null {
		return nil, 0, ""
	}
	class := col.Type.Class
	text := class == translate.Char || class == translate.Varchar
	if v == "" {
		if text && !c.EmptyAsNull {
			return &v, 0, ""
		}
		return nil, 0, ""
	}
	if text && c.BlanksAsNull && strings.TrimSpace(v) == "" {
		return nil, 0, ""
	}
	if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		if c.AcceptInvChars == "" {
			return nil, ErrUTF8, "String contains invalid or unsupported UTF8 codepoints"
		}
		v = replaceInvalid(v, c.AcceptInvChars)
	}
	switch class {
	case translate.Varchar:
		if col.Type.Length > 0 && len(v) > col.Type.Length {
			if !c.TruncateColumns {
				return nil, ErrRange, "String length exceeds DDL length"
			}
			v = cut(v, col.Type.Length)
		}
		return &v, 0, ""
	case translate.Char:
		for i := 0; i < len(v); i++ {
			if v[i] >= 0x80 {
				return nil, ErrUTF8, fmt.Sprintf("Multibyte character not supported for CHAR (Hint: try using VARCHAR). Invalid char: %x", v[i])
			}
		}
		if len(strings.TrimRight(v, " ")) > col.Type.Length {
			if !c.TruncateColumns {
				return nil, ErrRange, "String length exceeds DDL length"
			}
			v = v[:col.Type.Length]
		}
		return &v, 0, ""
	case translate.SmallInt, translate.Integer, translate.BigInt:
		s := strings.TrimSpace(v)
		bits := map[translate.TypeClass]int{translate.SmallInt: 16, translate.Integer: 32, translate.BigInt: 64}[class]
		if _, err := strconv.ParseInt(s, 10, bits); err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return nil, ErrRange, fmt.Sprintf("Overflow, Value '%s', Type: %s", s, typeName(col.Type))
			}
			return nil, ErrDigit, invalidDigit(s, col.Type)
		}
		return &s, 0, ""
	case translate.Numeric:
		s := strings.TrimSpace(v)
		if !numericRE.MatchString(s) {
			return nil, ErrDigit, invalidDigit(s, col.Type)
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			return nil, ErrDigit, invalidDigit(s, col.Type)
		}
		if !c.RoundDec {
			r = truncateScale(s, col.Type.Scale)
		}
		rounded := r.FloatString(col.Type.Scale)
		intDigits := strings.TrimLeft(strings.SplitN(strings.TrimLeft(rounded, "+-"), ".", 2)[0], "0")
		if len(intDigits) > col.Type.Precision-col.Type.Scale || (col.Type.Precision == 19 && !fitsInt64(r, col.Type.Scale)) {
			return nil, ErrRange, fmt.Sprintf("Numeric data overflow (result precision), Value '%s'", s)
		}
		return &rounded, 0, ""
	case translate.Real, translate.Double:
		s := strings.TrimSpace(v)
		bits := 64
		if class == translate.Real {
			bits = 32
		}
		if _, err := strconv.ParseFloat(s, bits); err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return nil, ErrRange, fmt.Sprintf("Overflow, Value '%s', Type: %s", s, typeName(col.Type))
			}
			return nil, ErrFloat, fmt.Sprintf("Invalid digit, Value '%s', Type: %s", s, typeName(col.Type))
		}
		if strings.ContainsAny(s, "xXpP_") {
			return nil, ErrFloat, fmt.Sprintf("Invalid digit, Value '%s', Type: %s", s, typeName(col.Type))
		}
		return &s, 0, ""
	case translate.Boolean:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "t", "true", "1", "y", "yes", "on":
			s := "t"
			return &s, 0, ""
		case "f", "false", "0", "n", "no", "off":
			s := "f"
			return &s, 0, ""
		}
		return nil, ErrBoolean, fmt.Sprintf("Invalid boolean value '%s'", v)
	case translate.Date:
		s, ok := parseDate(strings.TrimSpace(v), strings.EqualFold(c.DateFormat, "auto"))
		if !ok {
			return nil, ErrDate, fmt.Sprintf("Invalid Date Format - value '%s'", v)
		}
		return &s, 0, ""
	case translate.Super:
		if !json.Valid([]byte(v)) {
			return nil, ErrJSON, "Invalid JSON format for SUPER data type"
		}
		if len(v) > translate.MaxSuperBytes {
			return nil, ErrRange, "SUPER value exceeds the maximum size"
		}
		return &v, 0, ""
	case translate.Varbyte:
		// VARBYTE loads from hex text; Postgres' bytea takes \x…
		if _, err := hex.DecodeString(v); err != nil {
			return nil, ErrHex, fmt.Sprintf("Invalid hexadecimal value '%s' for VARBYTE", cut(v, 60))
		}
		if len(v)/2 > col.Type.Length {
			return nil, ErrRange, "Value exceeds the VARBYTE length"
		}
		s := `\x` + v
		return &s, 0, ""
	case translate.Time, translate.TimeTZ:
		s := strings.TrimSpace(v)
		if !validTime(s, class == translate.TimeTZ) {
			return nil, ErrTimestamp, fmt.Sprintf("Invalid time format or value [HH24:MI:SS], value '%s'", v)
		}
		return &s, 0, ""
	case translate.Timestamp, translate.TimestampTZ:
		s, ok := parseTimestamp(strings.TrimSpace(v))
		if !ok {
			return nil, ErrTimestamp, fmt.Sprintf("Invalid timestamp format or value [YYYY-MM-DD HH24:MI:SS], value '%s'", v)
		}
		return &s, 0, ""
	}
	return &v, 0, ""
}

// fitsInt64 reports whether r rounded to scale is within Redshift's
// NUMERIC(19,scale) range, ±2^63 units of 10^-scale.
func fitsInt64(r *big.Rat, scale int) bool {
	lo, hi := translate.Int64Bounds(scale)
	l, _ := new(big.Rat).SetString(lo)
	h, _ := new(big.Rat).SetString(hi)
	rounded, _ := new(big.Rat).SetString(r.FloatString(scale))
	return rounded.Cmp(l) >= 0 && rounded.Cmp(h) <= 0
}

var numericRE = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)$`)

// truncateScale is decimal s (numericRE) with its fraction cut to scale
// digits: Redshift's COPY truncates excess scale unless ROUNDEC.
func truncateScale(s string, scale int) *big.Rat {
	if i := strings.IndexByte(s, '.'); i >= 0 && len(s)-i-1 > scale {
		s = s[:i+1+scale]
	}
	if strings.HasSuffix(s, ".") {
		s += "0"
	}
	r, _ := new(big.Rat).SetString(s)
	return r
}

func invalidDigit(s string, t translate.Type) string {
	pos, ch := 0, ""
	for i, r := range s {
		if !(r >= '0' && r <= '9') && !(i == 0 && (r == '-' || r == '+')) && r != '.' {
			pos, ch = i, string(r)
			break
		}
	}
	return fmt.Sprintf("Invalid digit, Value '%s', Pos %d, Type: %s", ch, pos, typeName(t))
}

func replaceInvalid(s, repl string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if (r == utf8.RuneError && n == 1) || r == 0 {
			b.WriteString(repl)
		} else {
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

var (
	dateISO   = regexp.MustCompile(`^(\d{4,6})-(\d{1,2})-(\d{1,2})(?:\s+(BC|AD|bc|ad))?$`)
	dateSlash = regexp.MustCompile(`^(\d{1,2})/(\d{1,2})/(\d{4,6})$`)
	dateFlat  = regexp.MustCompile(`^(\d{4})(\d{2})(\d{2})$`)
	tsISO     = regexp.MustCompile(`^(\d{4,6})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?)?\s*(Z|[+-]\d{1,2}(?::?\d{2})?)?(?:\s+(BC|AD|bc|ad))?$`)
	timeRE    = regexp.MustCompile(`^(\d{1,2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?(Z|[+-]\d{1,2}(?::?\d{2})?)?$`)
	offsetRE  = regexp.MustCompile(`^[+-](\d{1,2})(?::?(\d{2}))?$`)
)

// validOffset checks a UTC offset: Redshift holds ±14:59 at most and no
// seconds (Postgres prints +00:53:28 for old local mean times: refused).
func validOffset(z string) bool {
	if z == "" || z == "Z" {
		return true
	}
	g := offsetRE.FindStringSubmatch(z)
	return g != nil && atoi(g[1]) <= 14 && atoi(g[2]) <= 59
}

// validTime checks TIME (00:00:00 … 24:00:00) and, with tz, TIMETZ (an
// offset is optional and at most ±14:59).
func validTime(s string, tz bool) bool {
	g := timeRE.FindStringSubmatch(s)
	if g == nil || (!tz && g[5] != "") || !validOffset(g[5]) {
		return false
	}
	h, m, sec := atoi(g[1]), atoi(g[2]), atoi(g[3])
	if h == 24 {
		return m == 0 && sec == 0 && strings.Trim(g[4], ".0") == ""
	}
	return h < 24 && m <= 59 && sec <= 59
}

// parseDate checks a date and returns it as YYYY-MM-DD[ BC]; auto accepts
// MM/DD/YYYY and YYYYMMDD too.
func parseDate(s string, auto bool) (string, bool) {
	var y, m, d int
	bc := false
	if g := dateISO.FindStringSubmatch(s); g != nil {
		y, m, d = atoi(g[1]), atoi(g[2]), atoi(g[3])
		bc = strings.EqualFold(g[4], "bc")
	} else if g := dateSlash.FindStringSubmatch(s); auto && g != nil {
		m, d, y = atoi(g[1]), atoi(g[2]), atoi(g[3])
	} else if g := dateFlat.FindStringSubmatch(s); auto && g != nil {
		y, m, d = atoi(g[1]), atoi(g[2]), atoi(g[3])
	} else {
		return "", false
	}
	if !validDate(y, m, d, bc) {
		return "", false
	}
	out := fmt.Sprintf("%04d-%02d-%02d", y, m, d)
	if bc {
		out += " BC"
	}
	return out, true
}

// parseTimestamp checks an ISO timestamp (date, optional time, optional
// zone) within Redshift's range.
func parseTimestamp(s string) (string, bool) {
	g := tsISO.FindStringSubmatch(s)
	if g == nil {
		return "", false
	}
	bc := strings.EqualFold(g[9], "bc")
	if !validDate(atoi(g[1]), atoi(g[2]), atoi(g[3]), bc) {
		return "", false
	}
	if g[4] != "" && (atoi(g[4]) > 23 || atoi(g[5]) > 59 || (g[6] != "" && atoi(g[6]) > 59)) {
		return "", false
	}
	if !validOffset(g[8]) {
		return "", false
	}
	return s, true
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// validDate checks a proleptic Gregorian date within 4713 BC … 294276 AD.
func validDate(y, m, d int, bc bool) bool {
	if y < 1 || m < 1 || m > 12 || d < 1 {
		return false
	}
	if (bc && y > 4713) || (!bc && y > 294276) {
		return false
	}
	astro := y
	if bc {
		astro = 1 - y
	}
	leap := astro%4 == 0 && (astro%100 != 0 || astro%400 == 0)
	days := []int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[m-1]
	if m == 2 && leap {
		days = 29
	}
	return d <= days
}
