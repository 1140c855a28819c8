package testdecoding

import "strings"

// reservedKeywords are the PostgreSQL 15 keywords whose category is not
// "unreserved" (SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'):
// quote_identifier quotes them even though they are lower case.
var reservedKeywords = map[string]struct{}{}

func init() {
	for _, w := range strings.Fields(reservedKeywordList) {
		reservedKeywords[w] = struct{}{}
	}
}

// QuoteIdentifier quotes ident exactly as PostgreSQL 15's quote_identifier
// does (with quote_all_identifiers off): unquoted when it is non-empty, starts
// with a-z or _, holds only a-z, 0-9 and _, and is not a reserved, type/function
// or column-name keyword; else in double quotes with " doubled.
func QuoteIdentifier(ident string) string {
	safe := ident != "" && (ident[0] >= 'a' && ident[0] <= 'z' || ident[0] == '_')
	quotes := 0
	for i := 0; i < len(ident); i++ {
		c := ident[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' {
			continue
		}
		safe = false
		if c == '"' {
			quotes++
		}
	}
	if safe {
		if _, kw := reservedKeywords[ident]; !kw {
			return ident
		}
	}
	var b strings.Builder
	b.Grow(len(ident) + quotes + 2)
	b.WriteByte('"')
	for i := 0; i < len(ident); i++ {
		if ident[i] == '"' {
			b.WriteByte('"')
		}
		b.WriteByte(ident[i])
	}
	b.WriteByte('"')
	return b.String()
}

const reservedKeywordList = `
all analyse analyze and any array as asc asymmetric authorization between
bigint binary bit boolean both case cast char character check coalesce
collate collation column concurrently constraint create cross
current_catalog current_date current_role current_schema current_time
current_timestamp current_user dec decimal default deferrable desc distinct
do else end except exists extract false fetch float for foreign freeze from
full grant greatest group grouping having ilike in initially inner inout
int integer intersect interval into is isnull join lateral leading least
left like limit localtime localtimestamp national natural nchar none
normalize not notnull null nullif numeric offset on only or order out outer
overlaps overlay placing position precision primary real references
returning right row select session_user setof similar smallint some
substring symmetric table tablesample then time timestamp to trailing treat
trim true union unique user using values varchar variadic verbose when
where window with xmlattributes xmlconcat xmlelement xmlexists xmlforest
xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable
`
