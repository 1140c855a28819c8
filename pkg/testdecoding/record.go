package testdecoding

import (
	"fmt"
	"strings"
	"time"
)

// Kind is the kind of a test_decoding record.
type Kind uint8

// The record kinds, in the order test_decoding's callbacks are declared.
const (
	KindBegin Kind = iota + 1
	KindCommit
	KindInsert
	KindUpdate
	KindDelete
	KindTruncate
	KindMessage
)

var kindNames = [...]string{
	KindBegin:    "BEGIN",
	KindCommit:   "COMMIT",
	KindInsert:   "INSERT",
	KindUpdate:   "UPDATE",
	KindDelete:   "DELETE",
	KindTruncate: "TRUNCATE",
	KindMessage:  "MESSAGE",
}

// String returns the upper-case name of k as test_decoding prints it
// ("MESSAGE" for message records).
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// MarshalText makes a Kind readable in JSON.
func (k Kind) MarshalText() ([]byte, error) {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return []byte(kindNames[k]), nil
	}
	return nil, fmt.Errorf("marshal kind: unknown kind %d", uint8(k))
}

// UnmarshalText is the inverse of MarshalText.
func (k *Kind) UnmarshalText(b []byte) error {
	for i, n := range kindNames {
		if n != "" && n == string(b) {
			*k = Kind(i)
			return nil
		}
	}
	return fmt.Errorf("unmarshal kind: unknown kind %q", b)
}

// Table names a relation by its unquoted schema and name.
type Table struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
}

// String returns the table quoted exactly as Postgres' quote_identifier
// would quote each part, joined by a dot: public.orders, "Weird.Schema"."T".
func (t Table) String() string {
	return QuoteIdentifier(t.Schema) + "." + QuoteIdentifier(t.Name)
}

// Column is one column of a tuple as test_decoding prints it.
//
// Type is format_type_be's output, verbatim: it carries no type modifier
// ("character varying", "numeric", "bit", "timestamp with time zone", never
// "character varying(10)" or "numeric(10,2)"), arrays end in "[]", and types
// outside the search path or needing quotes are printed quoted and
// qualified ("\"MyEnum\"", "myschema.\"T\"", "public.hstore" when the
// extension is not on the path). Lengths, precisions and scales must come
// from the source catalog.
//
// The strings of a parsed Column point into one copy of their record's text
// (with ParseInto, an unchanged name or type may point into an earlier
// record's): keeping any of them keeps that text alive.
type Column struct {
	Name      string `json:"name"`               // unquoted
	Type      string `json:"type"`               // format_type_be output, verbatim
	Value     string `json:"value,omitzero"`     // SQL quoting undone; "" when Null or Unchanged
	Null      bool   `json:"null,omitzero"`      // printed as null
	Unchanged bool   `json:"unchanged,omitzero"` // printed as unchanged-toast-datum
	Quoted    bool   `json:"quoted,omitzero"`    // a '...' literal rather than a bare one (numbers, booleans, B'...')
}

// Record is one parsed test_decoding record.
type Record struct {
	Kind       Kind      `json:"kind"`
	XID        uint32    `json:"xid,omitzero"`         // BEGIN/COMMIT with include-xids
	CommitTime time.Time `json:"commit_time,omitzero"` // COMMIT with include-timestamp, UTC
	Table      Table     `json:"table,omitzero"`       // INSERT/UPDATE/DELETE
	Tables     []Table   `json:"tables,omitempty"`     // TRUNCATE
	Restart    bool      `json:"restart,omitzero"`     // TRUNCATE restart_seqs
	Cascade    bool      `json:"cascade,omitzero"`     // TRUNCATE cascade
	// Columns is the new tuple of an INSERT or UPDATE, and the key (or the
	// whole old row under REPLICA IDENTITY FULL) of a DELETE.
	Columns []Column `json:"columns,omitempty"`
	// OldKey is the "old-key:" part of an UPDATE: the old key when it
	// changed, or the old row under REPLICA IDENTITY FULL.
	OldKey []Column `json:"old_key,omitempty"`
	// HasOldKey reports that an UPDATE carried an "old-key:" part, even an
	// empty one (old columns that are null are not printed).
	HasOldKey   bool `json:"has_old_key,omitzero"`
	NoTupleData bool `json:"no_tuple_data,omitzero"` // "(no-tuple-data)"

	// Message records (pg_logical_emit_message).
	Transactional bool   `json:"transactional,omitzero"`
	Prefix        string `json:"prefix,omitzero"`
	Content       string `json:"content,omitzero"`
}

// ParseError says why a record could not be parsed.
type ParseError struct {
	Table  string // the table (quoted, as printed) named before the error; "" if the parser did not get that far
	Line   int    // 1-based line where the record starts, when read by a Reader; 0 otherwise
	Offset int    // byte offset in the record
	Reason string
}

// Error implements error.
func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("parse test_decoding: ")
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Table != "" {
		b.WriteString("table ")
		b.WriteString(e.Table)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "offset %d: %s", e.Offset, e.Reason)
	return b.String()
}
