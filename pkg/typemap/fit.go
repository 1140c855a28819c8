package typemap

import (
	"math/big"
	"strings"
	"unicode/utf8"
)

// Value rules applied by Fit, as counted in metrics and results.
const (
	RuleNumericSaturated = "numeric-saturated"
	RuleNumericNaNNull   = "numeric-nan-null"
	RuleTextTruncated    = "text-truncated"
	RuleFloatNonFinite   = "float-nonfinite-null"
	RuleDateOutOfRange   = "date-out-of-range-null"
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
		return fitNumeric(t, value)
	case KindReal, KindDouble:
		switch strings.ToLower(strings.TrimSpace(value)) {
		case "nan", "infinity", "-infinity", "+infinity", "inf", "-inf", "+inf":
			return "", true, RuleFloatNonFinite
		}
		return value, false, ""
	case KindDate, KindTimestamp, KindTimestampTZ:
		if !dateInRange(value) {
			return "", true, RuleDateOutOfRange
		}
		return value, false, ""
	}
	return value, false, ""
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
