// Package typemap maps a Postgres column type, as test_decoding prints it, to
// the warehouse column type redms creates for it, and fits source values into
// that type (docs/DESIGN.md §5).
//
// Both warehouse dialects get the same mapping and the same value rules, so a
// Postgres warehouse (the quickstart) shows exactly what Redshift would hold:
//
//	Postgres source type                      target (both dialects)        value rule (Fit)
//	smallint, integer, bigint                 SMALLINT, INTEGER, BIGINT     unchanged
//	oid                                       BIGINT                        unchanged
//	numeric(p,s), p <= 38                     NUMERIC(p,s)                  round to s (half away from zero), saturate, NaN -> NULL
//	numeric(p,s), p > 38                      NUMERIC(38,min(s,37))         same
//	numeric (no typmod)                       NUMERIC(19,8) (configurable)  same
//	real, double precision                    REAL, DOUBLE PRECISION        Infinity/-Infinity/NaN -> NULL
//	boolean                                   BOOLEAN                       unchanged
//	character varying(n), character(n)        VARCHAR(min(4n,65535))        truncated to the byte length at a UTF-8 boundary
//	text, json, jsonb, xml, arrays, enums,    VARCHAR(65535)                text form, truncated likewise
//	  interval, inet, ranges, any other type
//	uuid                                      CHAR(36)                      unchanged
//	json, jsonb with Options.JSONSuper         SUPER (Redshift)              JSON text as printed
//	bytea                                     VARCHAR(65535)                hex form as printed (\x...), truncated
//	bytea with Options.ByteaVarbyte            VARBYTE(1048576) (Redshift)   hex without \x, cut to 1 MiB
//	date                                      DATE                          ±infinity, years outside 4713 BC..294276 AD -> NULL
//	timestamp [(n)] without time zone         TIMESTAMP                     likewise
//	timestamp [(n)] with time zone            TIMESTAMPTZ                   rewritten in UTC (+00), then likewise
//	time [(n)] without time zone              TIME                          unchanged
//	time [(n)] with time zone                 TIMETZ                        rewritten in UTC (+00); unreadable -> NULL
//
// test_decoding prints type names without their modifiers (numeric(12,2)
// arrives as "numeric", varchar(10) as "character varying"); capture sends
// each table's declared types (format_type) beside it, and Declared picks
// the declared type where it agrees with the printed one, so the modifier
// rows of the table apply. Where no declared type is known every numeric
// maps to the configured default and every text type to VARCHAR(65535).
//
// SUPER and VARBYTE are Redshift's: with JSONSuper or ByteaVarbyte the
// Postgres dialect keeps VARCHAR(65535) (the options name Redshift).
//
// Decisions:
//   - VARCHAR lengths are bytes (Redshift's unit). A character varying(n) can
//     hold n characters of up to 4 bytes each, so it maps to 4n bytes (capped at
//     65535) and valid source values are never truncated. In a Postgres
//     warehouse VARCHAR(n) counts characters, so a value cut to n bytes always fits.
//   - Precision 19 or less is stored by Redshift as a 64-bit integer, so the
//     largest magnitude is the smaller of 10^(p-s)-10^-s and
//     9223372036854775807 × 10^-s (NUMERIC(19,8) tops out at ±92233720368.54775807).
//     Precision above 19 uses the decimal bound. ±Infinity saturates; NaN is NULL.
//     Rounding an unconstrained numeric to the target scale is part of the type
//     and is not counted as an adjustment; saturation is.
//   - Float ±Infinity and NaN become NULL in both dialects: Redshift's
//     documentation does not state that COPY accepts them for REAL/DOUBLE
//     PRECISION, so redms does not rely on it.
//   - Fit returns numerics in canonical form with exactly s fractional digits,
//     which is how both warehouses print them back.
//   - TIMESTAMPTZ and TIMETZ values are loaded in UTC: Postgres prints old
//     timestamps outside UTC with an offset in seconds (+00:53:28), which
//     Redshift's COPY refuses, and Redshift keeps these types in UTC anyway.
//     The instant is the same, so the rewrite is not counted.
package typemap

import (
	"fmt"
	"strconv"
	"strings"
)

// Dialect is the warehouse flavour a Target is rendered for.
type Dialect string

const (
	Postgres Dialect = "postgres"
	Redshift Dialect = "redshift"
)

// MaxVarchar is the largest VARCHAR length in bytes Redshift allows; every
// text-like type maps to it.
const MaxVarchar = 65535

// Kind is the family of a target column type.
type Kind uint8

const (
	KindVarchar Kind = iota + 1
	KindChar
	KindSmallInt
	KindInteger
	KindBigInt
	KindNumeric
	KindReal
	KindDouble
	KindBoolean
	KindDate
	KindTimestamp
	KindTimestampTZ
	KindTime
	KindTimeTZ
	KindSuper   // Redshift SUPER (json, jsonb with Options.JSONSuper)
	KindVarbyte // Redshift VARBYTE(n) (bytea with Options.ByteaVarbyte)
)

// MaxVarbyte is the length of the VARBYTE columns bytea maps to: a value
// travels through COPY as hex, two characters a byte, in a row of at most
// 4 MB, so a longer one could not load anyway.
const MaxVarbyte = 1 << 20

// Numeric is a NUMERIC precision and scale.
type Numeric struct{ Precision, Scale int }

// DefaultNumeric is the target of an unconstrained numeric unless configured.
var DefaultNumeric = Numeric{Precision: 19, Scale: 8}

// ParseNumeric reads "p,s" (REDMS_NUMERIC_DEFAULT).
func ParseNumeric(s string) (Numeric, error) {
	ps, ss, ok := strings.Cut(strings.TrimSpace(s), ",")
	if !ok {
		return Numeric{}, fmt.Errorf("parse numeric %q: want precision,scale", s)
	}
	p, err := strconv.Atoi(strings.TrimSpace(ps))
	if err != nil {
		return Numeric{}, fmt.Errorf("parse numeric precision %q: %w", s, err)
	}
	sc, err := strconv.Atoi(strings.TrimSpace(ss))
	if err != nil {
		return Numeric{}, fmt.Errorf("parse numeric scale %q: %w", s, err)
	}
	if p < 1 || p > 38 || sc < 0 || sc > p || sc > 37 {
		return Numeric{}, fmt.Errorf("parse numeric %q: want 1 <= precision <= 38, 0 <= scale <= min(precision, 37)", s)
	}
	return Numeric{Precision: p, Scale: sc}, nil
}

// Target is a warehouse column type.
type Target struct {
	SQL       string // as written in DDL, e.g. "NUMERIC(19,8)", "VARCHAR(65535)"
	Kind      Kind
	Precision int // KindNumeric
	Scale     int // KindNumeric
	Length    int // KindVarchar, KindChar: bytes
}

// Make builds the Target of a kind; precision and scale matter for
// KindNumeric, length for KindVarchar and KindChar.
func Make(k Kind, precision, scale, length int) Target {
	t := Target{Kind: k}
	switch k {
	case KindVarchar:
		t.Length = length
		t.SQL = fmt.Sprintf("VARCHAR(%d)", length)
	case KindChar:
		t.Length = length
		t.SQL = fmt.Sprintf("CHAR(%d)", length)
	case KindNumeric:
		t.Precision, t.Scale = precision, scale
		t.SQL = fmt.Sprintf("NUMERIC(%d,%d)", precision, scale)
	case KindSmallInt:
		t.SQL = "SMALLINT"
	case KindInteger:
		t.SQL = "INTEGER"
	case KindBigInt:
		t.SQL = "BIGINT"
	case KindReal:
		t.SQL = "REAL"
	case KindDouble:
		t.SQL = "DOUBLE PRECISION"
	case KindBoolean:
		t.SQL = "BOOLEAN"
	case KindDate:
		t.SQL = "DATE"
	case KindTimestamp:
		t.SQL = "TIMESTAMP"
	case KindTimestampTZ:
		t.SQL = "TIMESTAMPTZ"
	case KindTime:
		t.SQL = "TIME"
	case KindTimeTZ:
		t.SQL = "TIMETZ"
	case KindSuper:
		t.SQL = "SUPER"
	case KindVarbyte:
		t.Length = length
		t.SQL = fmt.Sprintf("VARBYTE(%d)", length)
	}
	return t
}

// Options are the configurable parts of the mapping.
type Options struct {
	NumericDefault Numeric // zero value means DefaultNumeric
	JSONSuper      bool    // Redshift: json and jsonb as SUPER
	ByteaVarbyte   bool    // Redshift: bytea as VARBYTE
}

// Declared is the type to map for a column test_decoding printed as
// printed, whose declared type (format_type, Redms-Types) is declared:
// the declared one when it names the same type with a modifier
// ("numeric(10,2)" for "numeric", "timestamp(3) with time zone" for
// "timestamp with time zone", "character varying(20)[]" for
// "character varying[]"), else printed (nothing declared, or a declared
// type from another moment of the catalog).
func Declared(printed, declared string) string {
	if declared == "" {
		return printed
	}
	base, _ := splitTypmod(strings.TrimSpace(declared))
	if base == strings.TrimSpace(printed) {
		return declared
	}
	return printed
}

// Map returns the target type of a Postgres type as test_decoding prints it
// (or as Declared chose it). Every type maps to something: unknown types
// (enums, domains, extensions) become VARCHAR(65535) holding their text
// form. Both dialects map alike, but for SUPER and VARBYTE (Redshift only).
func Map(d Dialect, pgType string, opt Options) Target {
	t := strings.TrimSpace(pgType)
	if strings.HasSuffix(t, "]") {
		return Make(KindVarchar, 0, 0, MaxVarchar)
	}
	base, mod := splitTypmod(t)
	switch base {
	case "smallint":
		return Make(KindSmallInt, 0, 0, 0)
	case "integer":
		return Make(KindInteger, 0, 0, 0)
	case "bigint", "oid":
		return Make(KindBigInt, 0, 0, 0)
	case "real":
		return Make(KindReal, 0, 0, 0)
	case "double precision":
		return Make(KindDouble, 0, 0, 0)
	case "boolean":
		return Make(KindBoolean, 0, 0, 0)
	case "uuid":
		return Make(KindChar, 0, 0, 36)
	case "date":
		return Make(KindDate, 0, 0, 0)
	case "timestamp without time zone", "timestamp":
		return Make(KindTimestamp, 0, 0, 0)
	case "timestamp with time zone":
		return Make(KindTimestampTZ, 0, 0, 0)
	case "time without time zone", "time":
		return Make(KindTime, 0, 0, 0)
	case "time with time zone":
		return Make(KindTimeTZ, 0, 0, 0)
	case "numeric":
		return numericTarget(mod, opt)
	case "json", "jsonb":
		if opt.JSONSuper && d == Redshift {
			return Make(KindSuper, 0, 0, 0)
		}
	case "bytea":
		if opt.ByteaVarbyte && d == Redshift {
			return Make(KindVarbyte, 0, 0, MaxVarbyte)
		}
	case "character varying", "character", "bpchar":
		if len(mod) == 1 && mod[0] > 0 {
			return Make(KindVarchar, 0, 0, min(4*mod[0], MaxVarchar))
		}
		return Make(KindVarchar, 0, 0, MaxVarchar)
	}
	return Make(KindVarchar, 0, 0, MaxVarchar)
}

func numericTarget(mod []int, opt Options) Target {
	def := opt.NumericDefault
	if def.Precision == 0 {
		def = DefaultNumeric
	}
	if len(mod) == 0 {
		return Make(KindNumeric, def.Precision, def.Scale, 0)
	}
	p, s := mod[0], 0
	if len(mod) > 1 {
		s = mod[1]
	}
	// Postgres 15 allows a negative scale and a scale above the precision;
	// neither exists in Redshift.
	s = max(s, 0)
	p = min(p, 38)
	s = min(s, p, 37)
	if p < 1 {
		p = 1
	}
	return Make(KindNumeric, p, s, 0)
}

// splitTypmod splits "numeric(12,2)" or "timestamp(3) with time zone" into
// the type name without the modifier and the modifier's integers.
func splitTypmod(t string) (string, []int) {
	open := strings.IndexByte(t, '(')
	if open < 0 {
		return t, nil
	}
	end := strings.IndexByte(t[open:], ')')
	if end < 0 {
		return t, nil
	}
	end += open
	var mod []int
	for _, f := range strings.Split(t[open+1:end], ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return t, nil
		}
		mod = append(mod, n)
	}
	name := strings.TrimSpace(t[:open]) + t[end+1:]
	return name, mod
}
