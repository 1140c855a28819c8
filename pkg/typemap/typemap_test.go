package typemap

import (
	"strings"
	"testing"
)

func TestMap(t *testing.T) {
	cases := []struct {
		pg   string
		want string
		kind Kind
	}{
		{"smallint", "SMALLINT", KindSmallInt},
		{"integer", "INTEGER", KindInteger},
		{"bigint", "BIGINT", KindBigInt},
		{"oid", "BIGINT", KindBigInt},
		{"numeric(12,2)", "NUMERIC(12,2)", KindNumeric},
		{"numeric(38,10)", "NUMERIC(38,10)", KindNumeric},
		{"numeric(5)", "NUMERIC(5,0)", KindNumeric},
		{"numeric(50,10)", "NUMERIC(38,10)", KindNumeric},
		{"numeric(60,45)", "NUMERIC(38,37)", KindNumeric},
		{"numeric(5,-2)", "NUMERIC(5,0)", KindNumeric},
		{"numeric(3,5)", "NUMERIC(3,3)", KindNumeric},
		{"numeric", "NUMERIC(19,8)", KindNumeric},
		{"real", "REAL", KindReal},
		{"double precision", "DOUBLE PRECISION", KindDouble},
		{"boolean", "BOOLEAN", KindBoolean},
		{"character varying(10)", "VARCHAR(40)", KindVarchar},
		{"character varying(20000)", "VARCHAR(65535)", KindVarchar},
		{"character varying", "VARCHAR(65535)", KindVarchar},
		{"character(3)", "VARCHAR(12)", KindVarchar},
		{"text", "VARCHAR(65535)", KindVarchar},
		{"json", "VARCHAR(65535)", KindVarchar},
		{"jsonb", "VARCHAR(65535)", KindVarchar},
		{"xml", "VARCHAR(65535)", KindVarchar},
		{"integer[]", "VARCHAR(65535)", KindVarchar},
		{"character varying(10)[]", "VARCHAR(65535)", KindVarchar},
		{"hstore", "VARCHAR(65535)", KindVarchar},
		{"int4range", "VARCHAR(65535)", KindVarchar},
		{"mood", "VARCHAR(65535)", KindVarchar},
		{"citext", "VARCHAR(65535)", KindVarchar},
		{"inet", "VARCHAR(65535)", KindVarchar},
		{"interval", "VARCHAR(65535)", KindVarchar},
		{"uuid", "CHAR(36)", KindChar},
		{"bytea", "VARCHAR(65535)", KindVarchar},
		{"date", "DATE", KindDate},
		{"timestamp without time zone", "TIMESTAMP", KindTimestamp},
		{"timestamp(3) without time zone", "TIMESTAMP", KindTimestamp},
		{"timestamp with time zone", "TIMESTAMPTZ", KindTimestampTZ},
		{"timestamp(6) with time zone", "TIMESTAMPTZ", KindTimestampTZ},
		{"time without time zone", "TIME", KindTime},
		{"time(2) without time zone", "TIME", KindTime},
		{"time with time zone", "TIMETZ", KindTimeTZ},
	}
	for _, d := range []Dialect{Postgres, Redshift} {
		for _, c := range cases {
			got := Map(d, c.pg, Options{})
			if got.SQL != c.want || got.Kind != c.kind {
				t.Errorf("Map(%s, %q) = %q kind %d, want %q kind %d", d, c.pg, got.SQL, got.Kind, c.want, c.kind)
			}
			if again := Make(got.Kind, got.Precision, got.Scale, got.Length); again != got {
				t.Errorf("Make does not rebuild Map(%q): %+v vs %+v", c.pg, again, got)
			}
		}
	}
	if got := Map(Redshift, "numeric", Options{NumericDefault: Numeric{38, 10}}).SQL; got != "NUMERIC(38,10)" {
		t.Errorf("configured default: %q", got)
	}
	rs := Options{JSONSuper: true, ByteaVarbyte: true}
	for _, c := range []struct {
		d        Dialect
		pg, want string
	}{
		{Redshift, "json", "SUPER"}, {Redshift, "jsonb", "SUPER"}, {Redshift, "bytea", "VARBYTE(1048576)"},
		{Redshift, "jsonb[]", "VARCHAR(65535)"}, {Redshift, "bytea[]", "VARCHAR(65535)"},
		{Postgres, "jsonb", "VARCHAR(65535)"}, {Postgres, "bytea", "VARCHAR(65535)"},
	} {
		got := Map(c.d, c.pg, rs)
		if got.SQL != c.want {
			t.Errorf("Map(%s, %q) with SUPER and VARBYTE = %q, want %q", c.d, c.pg, got.SQL, c.want)
		}
		if again := Make(got.Kind, got.Precision, got.Scale, got.Length); again != got {
			t.Errorf("Make does not rebuild Map(%q): %+v vs %+v", c.pg, again, got)
		}
	}
}

func TestDeclared(t *testing.T) {
	cases := []struct{ printed, declared, want string }{
		{"numeric", "numeric(10,2)", "numeric(10,2)"},
		{"character varying", "character varying(20)", "character varying(20)"},
		{"character", "character(3)", "character(3)"},
		{"timestamp with time zone", "timestamp(3) with time zone", "timestamp(3) with time zone"},
		{"character varying[]", "character varying(20)[]", "character varying(20)[]"},
		{"numeric", "", "numeric"},
		{"text", "numeric(5,1)", "text"},                           // declared at another moment
		{"character varying", "character(3)", "character varying"}, // likewise
	}
	for _, c := range cases {
		if got := Declared(c.printed, c.declared); got != c.want {
			t.Errorf("Declared(%q, %q) = %q, want %q", c.printed, c.declared, got, c.want)
		}
	}
	// the acceptance of issue 10, in both dialects
	for _, d := range []Dialect{Postgres, Redshift} {
		if got := Map(d, Declared("numeric", "numeric(10,2)"), Options{}).SQL; got != "NUMERIC(10,2)" {
			t.Errorf("%s numeric(10,2): %s", d, got)
		}
		if got := Map(d, Declared("character varying", "character varying(20)"), Options{}).SQL; got != "VARCHAR(80)" {
			t.Errorf("%s varchar(20): %s", d, got)
		}
	}
}

func TestParseNumeric(t *testing.T) {
	if n, err := ParseNumeric("19,8"); err != nil || n != (Numeric{19, 8}) {
		t.Fatalf("ParseNumeric(19,8) = %v, %v", n, err)
	}
	for _, bad := range []string{"", "19", "39,2", "5,6", "a,b", "0,0"} {
		if _, err := ParseNumeric(bad); err == nil {
			t.Errorf("ParseNumeric(%q) accepted", bad)
		}
	}
}

func TestFit(t *testing.T) {
	n198 := Make(KindNumeric, 19, 8, 0)
	n122 := Make(KindNumeric, 12, 2, 0)
	n380 := Make(KindNumeric, 38, 0, 0)
	n3810 := Make(KindNumeric, 38, 10, 0)
	n180 := Make(KindNumeric, 18, 0, 0)
	v40 := Make(KindVarchar, 0, 0, 40)
	v5 := Make(KindVarchar, 0, 0, 5)
	vmax := Make(KindVarchar, 0, 0, MaxVarchar)
	cases := []struct {
		name  string
		t     Target
		in    string
		null  bool
		want  string
		wnull bool
		rule  string
	}{
		{"null stays null", n198, "", true, "", true, ""},
		{"integer as is", Make(KindInteger, 0, 0, 0), "-42", false, "-42", false, ""},
		{"boolean as is", Make(KindBoolean, 0, 0, 0), "true", false, "true", false, ""},
		{"uuid as is", Make(KindChar, 0, 0, 36), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", false, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", false, ""},
		{"time as is", Make(KindTime, 0, 0, 0), "24:00:00", false, "24:00:00", false, ""},

		{"numeric scale padded", n198, "1.5", false, "1.50000000", false, ""},
		{"numeric integer", n198, "42", false, "42.00000000", false, ""},
		{"numeric round half up", n198, "0.123456785", false, "0.12345679", false, ""},
		{"numeric round half away from zero negative", n198, "-0.123456785", false, "-0.12345679", false, ""},
		{"numeric round down", n198, "0.123456784999", false, "0.12345678", false, ""},
		{"numeric minus zero", n198, "-0", false, "0.00000000", false, ""},
		{"numeric minus zero fraction", n198, "-0.000000001", false, "0.00000000", false, ""},
		{"numeric tiny exponent", n198, "1e-30", false, "0.00000000", false, ""},
		{"numeric exponent", n198, "1.5E+3", false, "1500.00000000", false, ""},
		{"numeric 19,8 max", n198, "92233720368.54775807", false, "92233720368.54775807", false, ""},
		{"numeric 19,8 over max", n198, "92233720368.54775808", false, "92233720368.54775807", false, RuleNumericSaturated},
		{"numeric 19,8 min", n198, "-92233720368.54775807", false, "-92233720368.54775807", false, ""},
		{"numeric 19,8 under min", n198, "-100000000000", false, "-92233720368.54775807", false, RuleNumericSaturated},
		{"numeric rounds up over max", n198, "92233720368.547758075", false, "92233720368.54775807", false, RuleNumericSaturated},
		{"numeric huge", n198, "1" + strings.Repeat("0", 200), false, "92233720368.54775807", false, RuleNumericSaturated},
		{"numeric huge exponent", n198, "1e1000000000", false, "92233720368.54775807", false, RuleNumericSaturated},
		{"numeric tiny exponent far", n198, "-1e-1000000000", false, "0.00000000", false, ""},
		{"numeric NaN", n198, "NaN", false, "", true, RuleNumericNaNNull},
		{"numeric Infinity", n198, "Infinity", false, "92233720368.54775807", false, RuleNumericSaturated},
		{"numeric -Infinity", n198, "-Infinity", false, "-92233720368.54775807", false, RuleNumericSaturated},
		{"numeric 12,2 max", n122, "9999999999.99", false, "9999999999.99", false, ""},
		{"numeric 12,2 over", n122, "10000000000.00", false, "9999999999.99", false, RuleNumericSaturated},
		{"numeric 12,2 round to over", n122, "9999999999.995", false, "9999999999.99", false, RuleNumericSaturated},
		{"numeric 18,0 decimal bound", n180, "1000000000000000000", false, "999999999999999999", false, RuleNumericSaturated},
		{"numeric 38,0 max", n380, strings.Repeat("9", 38), false, strings.Repeat("9", 38), false, ""},
		{"numeric 38,0 over", n380, "1" + strings.Repeat("0", 38), false, strings.Repeat("9", 38), false, RuleNumericSaturated},
		{"numeric 38,10 over", n3810, "-1" + strings.Repeat("0", 28), false, "-" + strings.Repeat("9", 28) + "." + strings.Repeat("9", 10), false, RuleNumericSaturated},
		{"numeric unreadable left alone", n198, "abc", false, "abc", false, ""},
		{"numeric leading dot", n122, ".5", false, "0.50", false, ""},

		{"varbyte hex", Make(KindVarbyte, 0, 0, 4), `\x00ff10`, false, "00ff10", false, ""},
		{"varbyte too long", Make(KindVarbyte, 0, 0, 2), `\x00ff10`, false, "00ff", false, RuleBytesTruncated},
		{"varbyte empty", Make(KindVarbyte, 0, 0, 2), `\x`, false, "", true, RuleBytesEmptyNull},
		{"varbyte escape form left alone", Make(KindVarbyte, 0, 0, 2), `ab\000`, false, `ab\000`, false, ""},
		{"super as is", Make(KindSuper, 0, 0, 0), `{"a": [1, "x"]}`, false, `{"a": [1, "x"]}`, false, ""},
		{"float as is", Make(KindDouble, 0, 0, 0), "1.5e-300", false, "1.5e-300", false, ""},
		{"float minus zero", Make(KindDouble, 0, 0, 0), "-0", false, "-0", false, ""},
		{"float Infinity", Make(KindDouble, 0, 0, 0), "Infinity", false, "", true, RuleFloatNonFinite},
		{"float -Infinity", Make(KindReal, 0, 0, 0), "-Infinity", false, "", true, RuleFloatNonFinite},
		{"float NaN", Make(KindReal, 0, 0, 0), "NaN", false, "", true, RuleFloatNonFinite},

		{"text fits", v5, "héllo"[:5], false, "héllo"[:5], false, ""},
		{"text ascii cut", v5, "abcdefg", false, "abcde", false, RuleTextTruncated},
		{"text multibyte boundary", v5, "abcdé", false, "abcd", false, RuleTextTruncated},
		{"text multibyte exact", Make(KindVarchar, 0, 0, 6), "abcdé", false, "abcdé", false, ""},
		{"text 4-byte rune", v5, "a😀b", false, "a😀", false, RuleTextTruncated},
		{"text 4-byte rune cut", Make(KindVarchar, 0, 0, 4), "a😀b", false, "a", false, RuleTextTruncated},
		{"text empty", v40, "", false, "", false, ""},
		{"text max", vmax, strings.Repeat("é", 40000), false, strings.Repeat("é", 32767), false, RuleTextTruncated},
		{"bytea hex", vmax, `\x0001ff`, false, `\x0001ff`, false, ""},

		{"date", Make(KindDate, 0, 0, 0), "2024-02-29", false, "2024-02-29", false, ""},
		{"date year 0001", Make(KindDate, 0, 0, 0), "0001-01-01", false, "0001-01-01", false, ""},
		{"date BC", Make(KindDate, 0, 0, 0), "4713-01-01 BC", false, "4713-01-01 BC", false, ""},
		{"date max", Make(KindDate, 0, 0, 0), "294276-12-31", false, "294276-12-31", false, ""},
		{"date 294277", Make(KindDate, 0, 0, 0), "294277-01-01", false, "", true, RuleDateOutOfRange},
		{"date far", Make(KindDate, 0, 0, 0), "5874897-12-31", false, "", true, RuleDateOutOfRange},
		{"date infinity", Make(KindDate, 0, 0, 0), "infinity", false, "", true, RuleDateOutOfRange},
		{"date -infinity", Make(KindDate, 0, 0, 0), "-infinity", false, "", true, RuleDateOutOfRange},
		{"timestamp", Make(KindTimestamp, 0, 0, 0), "2024-01-02 03:04:05.123456", false, "2024-01-02 03:04:05.123456", false, ""},
		{"timestamp infinity", Make(KindTimestamp, 0, 0, 0), "infinity", false, "", true, RuleDateOutOfRange},
		{"timestamptz", Make(KindTimestampTZ, 0, 0, 0), "2024-01-02 03:04:05+00", false, "2024-01-02 03:04:05+00", false, ""},
		{"timestamptz BC", Make(KindTimestampTZ, 0, 0, 0), "0044-03-15 12:00:00+00 BC", false, "0044-03-15 12:00:00+00 BC", false, ""},
		{"timestamptz -infinity", Make(KindTimestampTZ, 0, 0, 0), "-infinity", false, "", true, RuleDateOutOfRange},
		// timestamptz and timetz are loaded in UTC: Redshift's 'auto' takes no offset with seconds
		{"timestamptz offset to UTC", Make(KindTimestampTZ, 0, 0, 0), "2024-01-02 03:04:05+05:30", false, "2024-01-01 21:34:05+00", false, ""},
		{"timestamptz fraction kept", Make(KindTimestampTZ, 0, 0, 0), "2024-01-02 03:04:05.123456-08", false, "2024-01-02 11:04:05.123456+00", false, ""},
		{"timestamptz offset with seconds", Make(KindTimestampTZ, 0, 0, 0), "1850-01-01 00:00:00+00:53:28", false, "1849-12-31 23:06:32+00", false, ""},
		{"timestamptz BC to UTC", Make(KindTimestampTZ, 0, 0, 0), "0044-03-15 00:30:00+01 BC", false, "0044-03-14 23:30:00+00 BC", false, ""},
		{"timestamptz into BC", Make(KindTimestampTZ, 0, 0, 0), "0001-01-01 00:30:00+01", false, "0001-12-31 23:30:00+00 BC", false, ""},
		{"timestamptz 5-digit year", Make(KindTimestampTZ, 0, 0, 0), "10000-01-01 00:00:00+00", false, "10000-01-01 00:00:00+00", false, ""},
		{"timestamptz past the range in UTC", Make(KindTimestampTZ, 0, 0, 0), "294276-12-31 23:00:00-05", false, "", true, RuleDateOutOfRange},
		{"timestamptz unreadable", Make(KindTimestampTZ, 0, 0, 0), "soon", false, "", true, RuleDateOutOfRange},
		{"timetz UTC", Make(KindTimeTZ, 0, 0, 0), "04:05:06+00", false, "04:05:06+00", false, ""},
		{"timetz offset to UTC", Make(KindTimeTZ, 0, 0, 0), "04:05:06.5+05:30", false, "22:35:06.5+00", false, ""},
		{"timetz beyond 14:59", Make(KindTimeTZ, 0, 0, 0), "04:05:06+15:59", false, "12:06:06+00", false, ""},
		{"timetz offset with seconds", Make(KindTimeTZ, 0, 0, 0), "23:00:00-00:53:28", false, "23:53:28+00", false, ""},
		{"timetz 24:00", Make(KindTimeTZ, 0, 0, 0), "24:00:00+00", false, "24:00:00+00", false, ""},
		{"timetz unreadable", Make(KindTimeTZ, 0, 0, 0), "noon", false, "", true, RuleTimeUnexpressible},
	}
	for _, c := range cases {
		got, null, rule := Fit(c.t, c.in, c.null)
		if got != c.want || null != c.wnull || rule != c.rule {
			t.Errorf("%s: Fit(%s, %q) = %q null=%v rule=%q, want %q null=%v rule=%q",
				c.name, c.t.SQL, c.in, got, null, rule, c.want, c.wnull, c.rule)
		}
	}
}

func FuzzFitNumeric(f *testing.F) {
	for _, s := range []string{"0", "-0", "1.5", "1e-30", "92233720368.54775808", "NaN", "-Infinity", "1e999999999999", ".", "e5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tg := Make(KindNumeric, 19, 8, 0)
		got, null, rule := Fit(tg, v, false)
		if null || rule != "" || got == v {
			return
		}
		// A canonical result is a number with exactly 8 fractional digits.
		i := strings.IndexByte(got, '.')
		if i < 0 || len(got)-i-1 != 8 {
			t.Fatalf("Fit(%q) = %q: not canonical", v, got)
		}
	})
}

// TestFastPathsAgree: a value Fit passes through unchanged without parsing
// is one the general rewrite returns unchanged (the fast paths may leave
// rarer forms to it: a BC or five-digit year).
func TestFastPathsAgree(t *testing.T) {
	stamps := []string{"2026-01-01 00:00:01+00", "2026-01-01 00:00:01.5+00", "2024-02-29 23:59:59.999999+00", "2023-02-29 00:00:00+00",
		"2026-13-01 00:00:00+00", "2026-01-01 24:00:00+00", "0000-01-01 00:00:00+00", "0001-01-01 00:00:00+00 BC", "2026-01-01T00:00:00+00",
		"2026-01-01 00:00:00+01", "2026-01-01 00:00:00.+00", "2026-01-01 00:00:00.x1+00", "12026-01-01 00:00:00+00", " 2026-01-01 00:00:00+00",
		"2026-01-01 00:00:00+00:00", "2026-1-01 00:00:00+00", "2026-04-31 00:00:00+00"}
	for _, v := range stamps {
		if slow, ok := utcTimestamp(v); isUTCTimestamp(v) && !(ok && slow == v && dateInRange(v)) {
			t.Errorf("isUTCTimestamp(%q), but the rewrite gives %q, %v", v, slow, ok)
		}
	}
	nums := []string{"0", "-0", "0.00", "-0.00", "-0.01", "0.5", "1.50", "1.5", "10000.01", "-10000.01", "007.00", "1e3", "+1.00", " 1.00",
		"9999999999.99", "99999999999.99", "123456789012345678", "1234567890123456789", "9223372036854775807", "1.", ".50", "1.5x"}
	for _, tg := range []Target{Make(KindNumeric, 12, 2, 0), Make(KindNumeric, 19, 0, 0), Make(KindNumeric, 38, 0, 0), Make(KindNumeric, 18, 0, 0)} {
		for _, v := range nums {
			got, null, rule := fitNumeric(tg, v)
			if fast := numericFits(tg, v); fast && (got != v || null || rule != "") {
				t.Errorf("numericFits(%v, %q) but fitNumeric gives %q, %v, %q", tg, v, got, null, rule)
			}
		}
	}
	// The fast paths take what Postgres prints.
	if !isUTCTimestamp("2026-01-01 00:00:01+00") || !numericFits(Make(KindNumeric, 12, 2, 0), "-10000.01") || !numericFits(Make(KindNumeric, 19, 0, 0), "0") {
		t.Error("a value as Postgres prints it misses the fast path")
	}
}

// FuzzFitFastPaths: whatever the fast paths accept, the general rewrite
// returns unchanged.
func FuzzFitFastPaths(f *testing.F) {
	for _, s := range []string{"2026-01-01 00:00:01+00", "2024-02-29 23:59:59.5+00", "1.50", "-0.00", "12.34"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if isUTCTimestamp(v) {
			if slow, ok := utcTimestamp(v); !ok || slow != v || !dateInRange(v) {
				t.Fatalf("isUTCTimestamp(%q), but the rewrite gives %q, %v", v, slow, ok)
			}
		}
		tg := Make(KindNumeric, 12, 2, 0)
		if numericFits(tg, v) {
			if got, null, rule := fitNumeric(tg, v); got != v || null || rule != "" {
				t.Fatalf("numericFits(%q), but fitNumeric gives %q, %v, %q", v, got, null, rule)
			}
		}
	})
}
