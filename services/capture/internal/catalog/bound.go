package catalog

import (
	"fmt"
	"strings"

	"github.com/redms/redms/pkg/walheader"
)

// Bound forms of pg_get_expr(relpartbound, oid).
const (
	boundDefault = "DEFAULT"
	boundHash    = "FOR VALUES WITH ("
	boundRange   = "FOR VALUES FROM ("
	boundList    = "FOR VALUES IN ("
)

// parseBound reads a partition bound as pg_get_expr prints it:
//
//	FOR VALUES FROM (<v>, ...) TO (<v>, ...)
//	FOR VALUES IN (<v>, ...)
//
// where each value is a quoted literal ('-5', '2024-01-01', a quote in it
// doubled), a bare one (5, 1.5, true), NULL, MINVALUE or MAXVALUE. Postgres
// prints the constants of a bound without type labels, so this is the
// whole grammar; hash and DEFAULT bounds are the caller's to recognise
// first.
func parseBound(expr string) (from, to, in []walheader.Bound, err error) {
	switch {
	case strings.HasPrefix(expr, boundRange):
		rest := expr[len(boundRange):]
		if from, rest, err = parseBoundList(rest); err != nil {
			return nil, nil, nil, fmt.Errorf("parse partition bound %q: %w", expr, err)
		}
		var ok bool
		if rest, ok = strings.CutPrefix(rest, " TO ("); !ok {
			return nil, nil, nil, fmt.Errorf("parse partition bound %q: no TO after FROM", expr)
		}
		if to, rest, err = parseBoundList(rest); err != nil {
			return nil, nil, nil, fmt.Errorf("parse partition bound %q: %w", expr, err)
		}
		if rest != "" || len(from) != len(to) {
			return nil, nil, nil, fmt.Errorf("parse partition bound %q: FROM and TO do not match", expr)
		}
		return from, to, nil, nil
	case strings.HasPrefix(expr, boundList):
		var rest string
		if in, rest, err = parseBoundList(expr[len(boundList):]); err != nil {
			return nil, nil, nil, fmt.Errorf("parse partition bound %q: %w", expr, err)
		}
		if rest != "" {
			return nil, nil, nil, fmt.Errorf("parse partition bound %q: text after the list", expr)
		}
		return nil, nil, in, nil
	}
	return nil, nil, nil, fmt.Errorf("parse partition bound %q: neither a range nor a list bound", expr)
}

// parseBoundList reads "v, v, ...)" (the opening parenthesis consumed) and
// returns the values and the text after the closing parenthesis.
func parseBoundList(s string) ([]walheader.Bound, string, error) {
	var out []walheader.Bound
	for {
		var b walheader.Bound
		if strings.HasPrefix(s, "'") {
			v, n, err := unquoteLiteral(s)
			if err != nil {
				return nil, "", err
			}
			b, s = walheader.Bound{Kind: walheader.BoundValue, Value: v}, s[n:]
		} else {
			end := strings.IndexAny(s, ",)")
			if end <= 0 {
				return nil, "", fmt.Errorf("bad value at %q", s)
			}
			word := s[:end]
			s = s[end:]
			switch word {
			case "NULL":
				b.Kind = walheader.BoundNull
			case "MINVALUE":
				b.Kind = walheader.BoundMinValue
			case "MAXVALUE":
				b.Kind = walheader.BoundMaxValue
			default:
				b = walheader.Bound{Kind: walheader.BoundValue, Value: word}
			}
		}
		out = append(out, b)
		switch {
		case strings.HasPrefix(s, ", "):
			s = s[2:]
		case strings.HasPrefix(s, ")"):
			return out, s[1:], nil
		default:
			return nil, "", fmt.Errorf("bad separator at %q", s)
		}
	}
}

// unquoteLiteral reads the quoted literal at the start of s (a quote in it
// doubled) and returns its value and length.
func unquoteLiteral(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		return b.String(), i + 1, nil
	}
	return "", 0, fmt.Errorf("unterminated literal %q", s)
}
