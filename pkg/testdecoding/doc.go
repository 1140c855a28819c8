// Package testdecoding owns the text grammar of PostgreSQL's test_decoding
// logical decoding output plugin (as of PostgreSQL 15): it parses one record's
// text into a typed Record (Parse, ParseInto), renders a Record back into the
// canonical text (Render), and splits a pg_recvlogical stream into records
// (Reader).
//
// The record shapes are:
//
//	BEGIN [xid]
//	COMMIT [xid] [(at <timestamptz>)]
//	table <schema>.<name>: INSERT|UPDATE|DELETE: <columns> | (no-tuple-data)
//	table <schema>.<name>: UPDATE: old-key: <columns> new-tuple: <columns>
//	table <schema>.<name>[, <schema>.<name>...]: TRUNCATE: [restart_seqs] [cascade] | (no-flags)
//	message: transactional: 0|1 prefix: <prefix>, sz: <n> content:<n bytes>
//
// where each column is ` name[type]:value`, name is printed by Postgres'
// quote_identifier, type by format_type, and value is null,
// unchanged-toast-datum, a bare literal (numbers, booleans, bit strings) or a
// single-quoted literal with ' doubled. Quoted literals and message contents
// may contain newlines, so a record is not always one line.
//
// A column's type is printed without its type modifier (character varying,
// not character varying(10)): lengths, precisions and scales are not in the
// stream and must be read from the source catalog.
//
// Choices where Postgres' output leaves room:
//   - A bit string's Value keeps its B'...' form (it is a bare literal).
//   - A TRUNCATE's tables are in Record.Tables; Record.Table stays empty.
//   - A COMMIT time is returned in UTC; Postgres prints at most microseconds.
//   - Parse is strict where a Reader must agree with it: a bare literal or a
//     type may not hold a newline, a double quote or an unpaired single
//     quote outside double quotes (Postgres never prints one), so every
//     record Parse accepts ends, for a Reader, at the newline after it.
//   - An UPDATE whose old-key part is present but empty (every old column was
//     null) has HasOldKey set and an empty OldKey.
//
// Parse errors are *ParseError values naming the table (when the parser got
// that far), the byte offset in the record and the reason; the parser never
// panics on any input.
package testdecoding
