package workload

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// valueFunc draws one column value as Postgres text input; nil is SQL NULL.
type valueFunc func(r *rand.Rand) *string

func str(s string) *string { return &s }

// edgeOr returns a value from edges with probability p, else from gen.
// A nil entry in edges is SQL NULL.
func edgeOr(p float64, edges []*string, gen valueFunc) valueFunc {
	return func(r *rand.Rand) *string {
		if r.Float64() < p {
			return edges[r.IntN(len(edges))]
		}
		return gen(r)
	}
}

func strs(ss ...string) []*string {
	out := make([]*string, len(ss))
	for i := range ss {
		out[i] = &ss[i]
	}
	return out
}

// withNull appends SQL NULL to edge values.
func withNull(v []*string) []*string { return append(v, nil) }

func intIn(lo, hi int64) valueFunc {
	return func(r *rand.Rand) *string {
		return str(strconv.FormatInt(lo+r.Int64N(hi-lo+1), 10))
	}
}

// decimal draws a number with up to intDigits integer digits and exactly
// scale fraction digits, possibly negative.
func decimal(intDigits, scale int) valueFunc {
	return func(r *rand.Rand) *string {
		var b strings.Builder
		if r.IntN(4) == 0 {
			b.WriteByte('-')
		}
		n := 1 + r.IntN(intDigits)
		b.WriteString(strconv.Itoa(1 + r.IntN(9)))
		for i := 1; i < n; i++ {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		if scale > 0 {
			b.WriteByte('.')
			for i := 0; i < scale; i++ {
				b.WriteByte(byte('0' + r.IntN(10)))
			}
		}
		return str(b.String())
	}
}

func float(r *rand.Rand) *string {
	return str(strconv.FormatFloat((r.Float64()-0.5)*1e6, 'g', -1, 64))
}

func float32v(r *rand.Rand) *string {
	return str(strconv.FormatFloat(float64(float32((r.Float64()-0.5)*1e4)), 'g', -1, 32))
}

func boolean(r *rand.Rand) *string {
	if r.IntN(2) == 0 {
		return str("true")
	}
	return str("false")
}

const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// word draws n to m ASCII letters and digits.
func word(n, m int) valueFunc {
	return func(r *rand.Rand) *string { return str(randomText(r, n+r.IntN(m-n+1))) }
}

func randomText(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// multiByte draws n runes mixing 1-, 2-, 3- and 4-byte UTF-8 characters.
func multiByte(n int) valueFunc {
	runes := []rune("aé日😀ßж")
	return func(r *rand.Rand) *string {
		out := make([]rune, n)
		for i := range out {
			out[i] = runes[r.IntN(len(runes))]
		}
		return str(string(out))
	}
}

func uuid(r *rand.Rand) *string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return str(h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32])
}

func bytea(r *rand.Rand) *string {
	b := make([]byte, r.IntN(40))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return str(`\x` + hex.EncodeToString(b))
}

func date(r *rand.Rand) *string {
	return str(fmt.Sprintf("%04d-%02d-%02d", 1970+r.IntN(80), 1+r.IntN(12), 1+r.IntN(28)))
}

func clock(r *rand.Rand) string {
	return fmt.Sprintf("%02d:%02d:%02d.%06d", r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1000000))
}

func timestamp(r *rand.Rand) *string { return str(*date(r) + " " + clock(r)) }

func timestamptz(r *rand.Rand) *string {
	return str(*timestamp(r) + fmt.Sprintf("%+03d", r.IntN(27)-12))
}

func timeOfDay(r *rand.Rand) *string { return str(clock(r)) }

func timetz(r *rand.Rand) *string { return str(clock(r) + fmt.Sprintf("%+03d", r.IntN(27)-12)) }

func interval(r *rand.Rand) *string {
	return str(fmt.Sprintf("%d days %02d:%02d:%02d", r.IntN(2000)-1000, r.IntN(24), r.IntN(60), r.IntN(60)))
}

func intArray(r *rand.Rand) *string {
	n := r.IntN(5)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = strconv.Itoa(r.IntN(2000) - 1000)
	}
	return str("{" + strings.Join(parts, ",") + "}")
}

func textArray(r *rand.Rand) *string {
	n := r.IntN(4)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `"` + randomText(r, 1+r.IntN(8)) + `"`
	}
	return str("{" + strings.Join(parts, ",") + "}")
}

func jsonDoc(r *rand.Rand) *string {
	return str(fmt.Sprintf(`{"k": %q, "n": %d, "ok": %t}`, randomText(r, 6), r.IntN(1000), r.IntN(2) == 0))
}

func oneOf(vals ...string) valueFunc {
	return func(r *rand.Rand) *string { return str(vals[r.IntN(len(vals))]) }
}

// incompressible draws n bytes of random letters and digits: pglz cannot
// shrink them by its 25% minimum, so a value this size is stored out of line
// (TOASTed) uncompressed.
func incompressible(n int) valueFunc {
	return func(r *rand.Rand) *string { return str(randomText(r, n)) }
}

// Edge values of the strings every text-like column should survive: NULL,
// empty, the COPY and CSV null markers, quotes, newlines, backslashes, the
// test_decoding TOAST placeholder as data, commas and multi-byte text.
var textEdges = withNull(strs(
	"", `\N`, "NULL", `\`, `\\`, `'`, `"`, `a'b"c`, "line1\nline2", "cr\r\nlf",
	"tab\there", ",", `","`, "unchanged-toast-datum", " leading and trailing ",
	"日本語のテキスト", "😀 emoji", "null",
))

// varcharEdges fit varchar(10) in characters but not all in 10 bytes.
var varcharEdges = withNull(strs(
	"", `\N`, "NULL", `\`, `'`, `"`, "a\nb", "日本語日本語日本語日", "éééééééééé", "😀😀😀😀😀😀😀😀😀😀",
))

var charEdges = withNull(strs(" ", "", "ab", `\N`, "é日", "😀", "NULL"))

var smallintEdges = withNull(strs("-32768", "32767", "0"))
var integerEdges = withNull(strs("-2147483648", "2147483647", "0"))
var bigintEdges = withNull(strs("-9223372036854775808", "9223372036854775807", "0"))

// numeric(16,2) holds up to 14 integer digits.
var numericPSEdges = withNull(strs(
	"-99999999999999.99", "99999999999999.99", "0.01", "-0.01", "0", "NaN", "92233720368.54", "1.50",
))

var numericEdges = withNull(strs(
	"1e30", "-1e30", "0.000000000001", "NaN", "Infinity", "-Infinity",
	"123456789012345678901234567890.123456789", "92233720368.54775807", "92233720368.54775808",
	"-92233720368.54775809", "1.50000", "0",
))

var realEdges = withNull(strs("NaN", "Infinity", "-Infinity", "-0", "0", "1.17549435e-38", "3.4028235e+38", "0.1"))

var doubleEdges = withNull(strs(
	"NaN", "Infinity", "-Infinity", "-0", "1e308", "-1e308", "5e-324", "0.1", "1.7976931348623157e308",
))

var jsonEdges = withNull(strs(
	"{}", "[]", "null", `"\\N"`, `{"a": "b\"c", "n": null}`, `{ "spaced" :  1 }`, `"NULL"`, `{"nl": "x\ny"}`,
	`{"u": "日本"}`, `[1, 2.50, "three"]`,
))

var intArrayEdges = withNull(strs("{}", "{1,NULL,3}", "{-2147483648,2147483647}", "{{1,2},{3,4}}"))

var textArrayEdges = withNull(strs(
	"{}", `{"a b","c,d","\"q\"",NULL,"NULL"}`, `{"","\\N","\\"}`, `{"line1\nline2"}`, `{日本,"é"}`,
))

var uuidEdges = withNull(strs("00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"))

var byteaEdges = withNull(strs(`\x`, `\x00`, `\x5c4e`, `\x0d0a2c22`, `\xffffffff`))

var dateEdges = withNull(strs(
	"0001-01-01", "294276-12-31", "5874897-12-31", "infinity", "-infinity", "4713-01-01 BC", "2000-02-29", "1970-01-01",
))

var timestampEdges = withNull(strs(
	"0001-01-01 00:00:00", "294276-12-31 23:59:59.999999", "infinity", "-infinity",
	"0044-03-15 12:00:00 BC", "2024-02-29 12:34:56.123456", "1999-12-31 23:59:59", "1970-01-01 00:00:00",
))

var timestamptzEdges = withNull(strs(
	"0001-01-01 00:00:00+00", "294276-12-31 23:59:59.999999+00", "infinity", "-infinity",
	"2024-02-29 12:34:56.123456+05:30", "1999-12-31 23:59:59-08", "1970-01-01 00:00:00+00",
))

var timeEdges = withNull(strs("00:00:00", "23:59:59.999999", "24:00:00", "12:00:00.5"))

var timetzEdges = withNull(strs("00:00:00+1459", "24:00:00-1459", "12:34:56.789+05:30", "23:59:59.999999+00"))

var intervalEdges = withNull(strs(
	"0", "-1 days -02:03:04", "178000000 years", "-178000000 years", "1 mon 2 days 03:04:05.678901", "00:00:00.000001",
))

var enumLabels = []string{"sad", "ok", "happy", "so-so"}
var enumEdges = withNull(strs(enumLabels...))

var boolEdges = withNull(strs("true", "false"))

// hugeText is longer than Redshift's VARCHAR(65535) byte budget, mixing
// multi-byte characters so a cut can fall inside one.
func hugeText(r *rand.Rand) *string {
	var b strings.Builder
	for b.Len() < 66000 {
		b.WriteString(randomText(r, 50))
		b.WriteString("日本語")
	}
	return str(b.String())
}
