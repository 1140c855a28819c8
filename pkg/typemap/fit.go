package typemap

import (
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Value rules applied by Fit, as counted in metrics and results.
const (
	RuleNumericSaturated = "numeric-saturated"
	RuleNumericNaNNull   = "numeric-nan-null"
	RuleTextTruncated    = "text-truncated"
	RuleFloatNonFinite   = "float-nonfinite-null"
	RuleDateOutOfRange   = "date-out-of-range-null"
	// RuleTimeUnexpressible: a TIMETZ value Fit cannot bring into the UTC
	// form Redshift's COPY takes (Postgres never prints one) is NULL.
	RuleTimeUnexpressible = "time-unexpressible-null"
	// RuleBytesTruncated: a bytea value longer than its VARBYTE column
	// keeps its first bytes.
	RuleBytesTruncated = "bytes-truncated"
	// RuleBytesEmptyNull: an empty bytea is NULL in a VARBYTE column (an
	// empty CSV field, which COPY loads as NULL into every type but CHAR and
	// VARCHAR).
	RuleBytesEmptyNull = "bytes-empty-null"
	// RuleRowTooLarge: a staged row over COPY's 4 MB had its largest values
	// cut (text) or made NULL (other types) until it fit (applied by the
	// loader's staging, counted once per row).
	RuleRowTooLarge = "row-too-large"
)

// Years a Redshift DATE or TIMESTAMP can hold.
const (
	maxYearAD = 294276
	maxYearBC = 4713
)

var int64Max = big.NewInt(9223372036854775807)

// Fit returns the value as it must be loaded into a column of type t: the
// (possibly adjusted) text, whether it is NULL, and the rule applied ("" when
// the value is loaded as is, apart from canonical numeric formatting).
// A value Fit cannot read (not a number for a numeric column) is returned
// unchanged: the warehouse rejects it and the window parks.
func Fit(t Target, value string, null bool) (string, bool, string) {
	if null {
		return "", true, ""
	}
	switch t.Kind {
	case KindVarchar, KindChar:
		if t.Length > 0 && len(value) > t.Length {
			return truncateUTF8(value, t.Length), false, RuleTextTruncated
		}
		return value, false, ""
	case KindNumeric:
		if numericFits(t, value) {
			return value, false, ""
		}
		return fitNumeric(t, value)
	case KindReal, KindDouble:
		switch strings.ToLower(strings.TrimSpace(value)) {
		case "nan", "infinity", "-infinity", "+infinity", "inf", "-inf", "+inf":
			return "", true, RuleFloatNonFinite
		}
		return value, false, ""
	case KindTimestampTZ:
		if isUTCTimestamp(value) {
			return value, false, ""
		}
		v, ok := utcTimestamp(value)
		if !ok || !dateInRange(v) {
			return "", true, RuleDateOutOfRange
		}
		return v, false, ""
	case KindDate, KindTimestamp:
		if !dateInRange(value) {
			return "", true, RuleDateOutOfRange
		}
		return value, false, ""
	case KindTimeTZ:
		v, ok := utcTime(value)
		if !ok {
			return "", true, RuleTimeUnexpressible
		}
		return v, false, ""
	case KindVarbyte:
		// Postgres prints bytea as \x and hex (bytea_output hex); COPY into
		// VARBYTE takes the hex alone. Another form is left for the
		// warehouse to refuse.
		hex, ok := strings.CutPrefix(value, `\x`)
		if !ok {
			return value, false, ""
		}
		if hex == "" {
			return "", true, RuleBytesEmptyNull
		}
		if t.Length > 0 && len(hex) > 2*t.Length {
			return hex[:2*t.Length], false, RuleBytesTruncated
		}
		return hex, false, ""
	}
	return value, false, ""
}

// A timestamptz or timetz as Postgres prints it (DateStyle ISO): the offset
// may carry seconds (+00:53:28, Postgres' local mean time offsets before
// standard time zones), which Redshift's COPY refuses.
var (
	timestampTZRE = regexp.MustCompile(`^(\d{4,})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d+)?([+-]\d{2}(?::\d{2}){0,2})( BC)?$`)
	timeTZRE      = regexp.MustCompile(`^(\d{2}):(\d{2}):(\d{2})(\.\d+)?([+-]\d{2}(?::\d{2}){0,2})$`)
)

// offsetSeconds reads "+05", "-08:30" or "+00:53:28" as seconds east of UTC.
func offsetSeconds(s string) int {
	sign := 1
	if s[0] == '-' {
		sign = -1
	}
	secs, unit := 0, 3600
	for _, part := range strings.Split(s[1:], ":") {
		n, _ := strconv.Atoi(part)
		secs += n * unit
		unit /= 60
	}
	return sign * secs
}

// utcTimestamp rewrites a timestamptz in UTC ("…+00"), keeping its
// fraction; false when v is not one.
func utcTimestamp(v string) (string, bool) {
	g := timestampTZRE.FindStringSubmatch(strings.TrimSpace(v))
	if g == nil {
		return "", false
	}
	n := func(i int) int { x, _ := strconv.Atoi(g[i]); return x }
	year := n(1)
	if g[9] != "" {
		year = 1 - year // astronomical year: 1 BC is 0
	}
	t := time.Date(year, time.Month(n(2)), n(3), n(4), n(5), n(6), 0, time.UTC).Add(-time.Duration(offsetSeconds(g[8])) * time.Second)
	y, bc := t.Year(), ""
	if y <= 0 {
		y, bc = 1-y, " BC"
	}
	return fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d%s+00%s", y, t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), g[7], bc), true
}

// isUTCTimestamp reports whether v is a timestamptz utcTimestamp would
// return unchanged, as Postgres prints one in a UTC session: "YYYY-MM-DD
// hh:mm:ss[.f…]+00", an AD year of four digits, a valid date and time.
// It spares a snapshot's every row the regular expression (a quarter of
// the loader's CPU in the 1M-row snapshot benchmark, with fitNumeric).
func isUTCTimestamp(v string) bool {
	const base = len("2006-01-02 15:04:05")
	if len(v) < base+3 || v[4] != '-' || v[7] != '-' || v[10] != ' ' || v[13] != ':' || v[16] != ':' || v[len(v)-3:] != "+00" {
		return false
	}
	num := func(s string) int {
		n := 0
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return -1
			}
			n = n*10 + int(s[i]-'0')
		}
		return n
	}
	if frac := v[base : len(v)-3]; frac != "" && (len(frac) < 2 || frac[0] != '.' || num(frac[1:]) < 0) {
		return false
	}
	y, mo, d, h, mi, sec := num(v[0:4]), num(v[5:7]), num(v[8:10]), num(v[11:13]), num(v[14:16]), num(v[17:19])
	if y < 1 || mo < 1 || d < 1 || h < 0 || mi < 0 || sec < 0 {
		return false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC)
	return t.Year() == y && int(t.Month()) == mo && t.Day() == d && t.Hour() == h && t.Minute() == mi && t.Second() == sec
}

// utcTime rewrites a timetz in UTC, wrapping around midnight (24:00:00
// in UTC stays 24:00:00); false when v is not one.
func utcTime(v string) (string, bool) {
	g := timeTZRE.FindStringSubmatch(strings.TrimSpace(v))
	if g == nil {
		return "", false
	}
	h, _ := strconv.Atoi(g[1])
	m, _ := strconv.Atoi(g[2])
	sec, _ := strconv.Atoi(g[3])
	if h > 24 || m > 59 || sec > 59 {
		return "", false
	}
	off := offsetSeconds(g[5])
	if off == 0 {
		return fmt.Sprintf("%s:%s:%s%s+00", g[1], g[2], g[3], g[4]), true
	}
	const day = 24 * 3600
	total := ((h*3600+m*60+sec-off)%day + day) % day
	return fmt.Sprintf("%02d:%02d:%02d%s+00", total/3600, total/60%60, total%60, g[4]), true
}

// TruncateUTF8 cuts s to at most n bytes without splitting a character.
func TruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return truncateUTF8(s, max(n, 0))
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// dateInRange reports whether a date or timestamp in Postgres output form
// ("2024-01-02", "0044-03-15 12:00:00+00 BC", "infinity") has a year Redshift
// accepts.
func dateInRange(v string) bool {
	v = strings.TrimSpace(v)
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	if i == 0 || i > 9 {
		return false // infinity, -infinity, or nonsense
	}
	year := 0
	for _, c := range v[:i] {
		year = year*10 + int(c-'0')
	}
	if year == 0 {
		return false
	}
	if strings.HasSuffix(v, " BC") {
		return year <= maxYearBC
	}
	return year <= maxYearAD
}

// numericFits reports whether v is a number fitNumeric would return
// unchanged: plain digits, an optional minus and exactly the target's
// scale of fraction digits (as Postgres prints a numeric(p,s) value), no
// leading zero, not a negative zero, and at most min(p, 18) digits (the
// 19-digit limit is int64's, not 10^19-1).
func numericFits(t Target, v string) bool {
	s, neg := strings.CutPrefix(v, "-")
	intPart, frac, dot := strings.Cut(s, ".")
	if len(frac) != t.Scale || dot != (t.Scale > 0) || intPart == "" || (len(intPart) > 1 && intPart[0] == '0') {
		return false
	}
	nonzero := false
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			c := part[i]
			if c < '0' || c > '9' {
				return false
			}
			nonzero = nonzero || c != '0'
		}
	}
	digits := len(intPart) + len(frac)
	if intPart == "0" {
		digits--
	}
	return (nonzero || !neg) && digits <= min(t.Precision, 18)
}

// fitNumeric rounds v to the target scale (half away from zero) and saturates
// it to the target's bounds.
func fitNumeric(t Target, v string) (string, bool, string) {
	s := strings.TrimSpace(v)
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	switch strings.ToLower(s) {
	case "nan":
		return "", true, RuleNumericNaNNull
	case "infinity", "inf":
		return formatUnscaled(maxUnscaled(t), neg, t.Scale), false, RuleNumericSaturated
	}
	digits, exp, ok := parseDecimal(s)
	if !ok {
		return v, false, ""
	}
	limit := maxUnscaled(t)
	// value = digits × 10^exp; unscaled at the target scale = digits × 10^(exp+scale).
	shift := exp + t.Scale
	digits = strings.TrimLeft(digits, "0")
	var u big.Int
	switch {
	case digits == "":
		// zero, in any notation
	case shift >= 0:
		if len(digits)+shift > 40 {
			return formatUnscaled(limit, neg, t.Scale), false, RuleNumericSaturated
		}
		u.SetString(digits+strings.Repeat("0", shift), 10)
	default:
		drop := -shift
		if drop > len(digits) {
			break // rounds to zero
		}
		keep, next := digits[:len(digits)-drop], digits[len(digits)-drop]
		if keep != "" {
			u.SetString(keep, 10)
		}
		if next >= '5' {
			u.Add(&u, big.NewInt(1))
		}
	}
	if u.Cmp(limit) > 0 {
		return formatUnscaled(limit, neg, t.Scale), false, RuleNumericSaturated
	}
	return formatUnscaled(&u, neg, t.Scale), false, ""
}

// parseDecimal splits "123.45e-3" (no sign) into its digits "12345" and the
// power of ten they are scaled by (-5).
func parseDecimal(s string) (string, int, bool) {
	mant, expPart, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	if intPart == "" && frac == "" {
		return "", 0, false
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return "", 0, false
			}
		}
	}
	exp := 0
	if hasExp {
		e := expPart
		eneg := false
		switch {
		case strings.HasPrefix(e, "-"):
			eneg, e = true, e[1:]
		case strings.HasPrefix(e, "+"):
			e = e[1:]
		}
		if e == "" {
			return "", 0, false
		}
		for i := 0; i < len(e); i++ {
			if e[i] < '0' || e[i] > '9' {
				return "", 0, false
			}
			exp = exp*10 + int(e[i]-'0')
			if exp > 1<<20 {
				exp = 1 << 20 // far beyond any target: saturates or rounds to zero
			}
		}
		if eneg {
			exp = -exp
		}
	}
	return intPart + frac, exp - len(frac), true
}

// maxUnscaled is the largest unscaled integer a NUMERIC(p,s) holds: p nines,
// and for precision 19 or less also at most the 64-bit maximum.
func maxUnscaled(t Target) *big.Int {
	var m big.Int
	m.SetString(strings.Repeat("9", max(t.Precision, 1)), 10)
	if t.Precision <= 19 && m.Cmp(int64Max) > 0 {
		m.Set(int64Max)
	}
	return &m
}

// formatUnscaled renders u × 10^-scale with exactly scale fractional digits.
func formatUnscaled(u *big.Int, neg bool, scale int) string {
	d := u.String()
	if u.Sign() == 0 {
		neg = false
	}
	if scale > 0 {
		if len(d) <= scale {
			d = strings.Repeat("0", scale-len(d)+1) + d
		}
		d = d[:len(d)-scale] + "." + d[len(d)-scale:]
	}
	if neg {
		return "-" + d
	}
	return d
}
