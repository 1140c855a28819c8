// Package selection decides which tables capture publishes and on which
// table's subject: include/exclude patterns and inheritance-style partition
// suffixes.
package selection

import (
	"fmt"
	"regexp"
	"strings"
)

// Pattern matches a schema-qualified table name. It is written
// `schema.table`, where `*` in either part matches any run of characters
// (including none); a pattern without a dot matches the table name in any
// schema. The names compared are the unquoted identifiers.
type Pattern struct {
	schema, table string
}

// ParsePattern parses one pattern.
func ParsePattern(s string) (Pattern, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Pattern{}, fmt.Errorf("parse table pattern: empty")
	}
	schema, table, ok := strings.Cut(s, ".")
	if !ok {
		schema, table = "*", s
	}
	if schema == "" || table == "" {
		return Pattern{}, fmt.Errorf("parse table pattern %q: want schema.table", s)
	}
	return Pattern{schema: schema, table: table}, nil
}

// ParsePatterns parses a comma-separated list; an empty string is no patterns.
func ParsePatterns(s string) ([]Pattern, error) {
	var ps []Pattern
	for _, f := range strings.Split(s, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		p, err := ParsePattern(f)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// Match reports whether the table schema.name matches p.
func (p Pattern) Match(schema, name string) bool {
	return glob(p.schema, schema) && glob(p.table, name)
}

func (p Pattern) String() string { return p.schema + "." + p.table }

// glob matches s against pattern where `*` matches any run of bytes.
func glob(pattern, s string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == s
	}
	if !strings.HasPrefix(s, pattern[:star]) {
		return false
	}
	s, rest := s[star:], pattern[star+1:]
	// Try every position for the rest; patterns are short.
	for i := 0; i <= len(s); i++ {
		if glob(rest, s[i:]) {
			return true
		}
	}
	return false
}

// Filter selects tables: a table is selected when it matches an include
// pattern (or there are none) and matches no exclude pattern.
type Filter struct {
	Include, Exclude []Pattern
}

// NewFilter parses the comma-separated include and exclude lists.
func NewFilter(include, exclude string) (Filter, error) {
	in, err := ParsePatterns(include)
	if err != nil {
		return Filter{}, fmt.Errorf("include tables: %w", err)
	}
	ex, err := ParsePatterns(exclude)
	if err != nil {
		return Filter{}, fmt.Errorf("exclude tables: %w", err)
	}
	return Filter{Include: in, Exclude: ex}, nil
}

// Selected reports whether changes to schema.name are published.
func (f Filter) Selected(schema, name string) bool {
	if len(f.Include) > 0 {
		in := false
		for _, p := range f.Include {
			if p.Match(schema, name) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	for _, p := range f.Exclude {
		if p.Match(schema, name) {
			return false
		}
	}
	return true
}

// Suffix strips an inheritance-style partition suffix from table names.
type Suffix struct {
	re *regexp.Regexp
}

// NewSuffix compiles expr; an empty expr strips nothing.
func NewSuffix(expr string) (Suffix, error) {
	if expr == "" {
		return Suffix{}, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return Suffix{}, fmt.Errorf("partition suffix regexp: %w", err)
	}
	return Suffix{re: re}, nil
}

// Root returns the table name with the suffix removed, and whether one was:
// `orders_2024_01` with `_\d{4}_\d{2}$` gives `orders`, true. A name that
// would become empty is left alone.
func (s Suffix) Root(name string) (string, bool) {
	if s.re == nil {
		return name, false
	}
	loc := s.re.FindStringIndex(name)
	if loc == nil || loc[0] == 0 || loc[1] != len(name) {
		return name, false
	}
	return name[:loc[0]], true
}
