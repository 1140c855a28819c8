package typemap

import "strings"

// CollationSQL is the SQL of the locale a column of pg_attribute (alias a)
// compares by: "" for a type without collation, the libc locale for a libc
// collation (the database's for the default one), "C" for the builtin
// provider, "icu" for an ICU collation. pg_database's datlocprovider is read
// through to_jsonb: servers before 15 have no such column.
const CollationSQL = `CASE WHEN a.attcollation = 0 THEN '' ELSE (SELECT CASE c.collprovider ` +
	`WHEN 'd' THEN (SELECT CASE coalesce(to_jsonb(d)->>'datlocprovider', 'c') WHEN 'c' THEN d.datcollate WHEN 'b' THEN 'C' ELSE 'icu' END ` +
	`FROM pg_database d WHERE d.datname = current_database()) ` +
	`WHEN 'c' THEN c.collcollate WHEN 'b' THEN 'C' ELSE 'icu' END ` +
	`FROM pg_collation c WHERE c.oid = a.attcollation) END`

// SortKey is what a source key column is compared and ordered by so that
// it sorts as the warehouse sorts the column it maps to, and the type a
// key bound (its text) is cast to. quoted is the column's quoted name,
// declared its declared type (format_type with the modifier), locale its
// CollationSQL. Redshift compares character columns by their UTF-8 bytes,
// and so does the loader on a Postgres warehouse: a column Map makes
// character, but for text under a byte-order locale, uuid and bytea (whose
// text sorts as their values do), is compared as its text under collation
// "C", which no index on the column serves (same is false).
func SortKey(quoted, declared, locale string) (expr, boundType string, same bool) {
	switch Map(Postgres, declared, Options{}).Kind {
	case KindVarchar, KindChar:
	default:
		return quoted, declared, true
	}
	base, _ := splitTypmod(strings.TrimSpace(declared))
	switch base {
	case "uuid", "bytea":
		return quoted, declared, true
	case "text", "character varying", "character", "bpchar", "name":
		if byteOrder(locale) {
			return quoted, declared, true
		}
	}
	return quoted + `::text COLLATE "C"`, "text", false
}

// byteOrder reports whether a libc locale sorts strings by their bytes
// (codepoints, for UTF-8).
func byteOrder(locale string) bool {
	switch strings.ToLower(locale) {
	case "c", "posix", "c.utf-8", "c.utf8":
		return true
	}
	return false
}
