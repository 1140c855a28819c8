package testdecoding

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	orders := Table{Schema: "public", Name: "orders"}
	tests := []struct {
		name string
		text string
		want Record
	}{
		{"begin", "BEGIN", Record{Kind: KindBegin}},
		{"begin xid", "BEGIN 1234", Record{Kind: KindBegin, XID: 1234}},
		{"begin max xid", "BEGIN 4294967295", Record{Kind: KindBegin, XID: 4294967295}},
		{"commit", "COMMIT", Record{Kind: KindCommit}},
		{"commit xid", "COMMIT 1234", Record{Kind: KindCommit, XID: 1234}},
		{"commit xid time", "COMMIT 1234 (at 2024-01-02 03:04:05.123456+00)", Record{
			Kind: KindCommit, XID: 1234, CommitTime: time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)}},
		{"commit time offset", "COMMIT 7 (at 2024-01-02 03:04:05.5+05:30)", Record{
			Kind: KindCommit, XID: 7, CommitTime: time.Date(2024, 1, 1, 21, 34, 5, 500000000, time.UTC)}},
		{"commit time negative offset seconds", "COMMIT (at 1890-01-02 03:04:05-00:17:30)", Record{
			Kind: KindCommit, CommitTime: time.Date(1890, 1, 2, 3, 21, 35, 0, time.UTC)}},
		{"commit time no xid", "COMMIT (at 2024-01-02 03:04:05+00)", Record{
			Kind: KindCommit, CommitTime: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}},
		{"insert", "table public.orders: INSERT: id[integer]:1 note[text]:'it''s' amount[numeric(10,2)]:12.50 ok[boolean]:true", Record{
			Kind: KindInsert, Table: orders, Columns: []Column{
				{Name: "id", Type: "integer", Value: "1"},
				{Name: "note", Type: "text", Value: "it's", Quoted: true},
				{Name: "amount", Type: "numeric(10,2)", Value: "12.50"},
				{Name: "ok", Type: "boolean", Value: "true"},
			}}},
		{"insert nulls and empty", "table public.orders: INSERT: a[text]:null b[text]:'' c[text]:'null' d[text]:'\\N' e[text]:'NULL'", Record{
			Kind: KindInsert, Table: orders, Columns: []Column{
				{Name: "a", Type: "text", Null: true},
				{Name: "b", Type: "text", Quoted: true},
				{Name: "c", Type: "text", Value: "null", Quoted: true},
				{Name: "d", Type: "text", Value: `\N`, Quoted: true},
				{Name: "e", Type: "text", Value: "NULL", Quoted: true},
			}}},
		{"multiline literal", "table public.orders: INSERT: a[text]:'line1\nline2\t\\x '' ]: b[x]:1' b[integer]:2", Record{
			Kind: KindInsert, Table: orders, Columns: []Column{
				{Name: "a", Type: "text", Value: "line1\nline2\t\\x ' ]: b[x]:1", Quoted: true},
				{Name: "b", Type: "integer", Value: "2"},
			}}},
		{"bare specials", "table public.orders: INSERT: a[double precision]:NaN b[real]:-Infinity c[double precision]:Infinity d[bit(4)]:B'0101' e[oid]:16384 f[bigint]:-9223372036854775808 g[double precision]:1e+300", Record{
			Kind: KindInsert, Table: orders, Columns: []Column{
				{Name: "a", Type: "double precision", Value: "NaN"},
				{Name: "b", Type: "real", Value: "-Infinity"},
				{Name: "c", Type: "double precision", Value: "Infinity"},
				{Name: "d", Type: "bit(4)", Value: "B'0101'"},
				{Name: "e", Type: "oid", Value: "16384"},
				{Name: "f", Type: "bigint", Value: "-9223372036854775808"},
				{Name: "g", Type: "double precision", Value: "1e+300"},
			}}},
		{"types with spaces brackets quotes", `table public.orders: INSERT: a[character varying(10)]:'x' b[integer[]]:'{1,2}' c[timestamp with time zone]:'2024-01-01 00:00:00+00' d["MyEnum"]:'A' e["we]:ird"[]]:'{}' f[myschema."T""q"]:'v' g[numeric(10,2)[]]:'{1.00}'`, Record{
			Kind: KindInsert, Table: orders, Columns: []Column{
				{Name: "a", Type: "character varying(10)", Value: "x", Quoted: true},
				{Name: "b", Type: "integer[]", Value: "{1,2}", Quoted: true},
				{Name: "c", Type: "timestamp with time zone", Value: "2024-01-01 00:00:00+00", Quoted: true},
				{Name: "d", Type: `"MyEnum"`, Value: "A", Quoted: true},
				{Name: "e", Type: `"we]:ird"[]`, Value: "{}", Quoted: true},
				{Name: "f", Type: `myschema."T""q"`, Value: "v", Quoted: true},
				{Name: "g", Type: "numeric(10,2)[]", Value: "{1.00}", Quoted: true},
			}}},
		{"quoted identifiers", `table "Weird.Schema"."Mixed Case.Table*>": INSERT: "Col ""x"": y"[integer]:1 "ключ"[text]:'значение'`, Record{
			Kind: KindInsert, Table: Table{Schema: "Weird.Schema", Name: "Mixed Case.Table*>"}, Columns: []Column{
				{Name: `Col "x": y`, Type: "integer", Value: "1"},
				{Name: "ключ", Type: "text", Value: "значение", Quoted: true},
			}}},
		{"update", "table public.orders: UPDATE: id[integer]:1 big[text]:unchanged-toast-datum n[integer]:2", Record{
			Kind: KindUpdate, Table: orders, Columns: []Column{
				{Name: "id", Type: "integer", Value: "1"},
				{Name: "big", Type: "text", Unchanged: true},
				{Name: "n", Type: "integer", Value: "2"},
			}}},
		{"update old-key", "table public.orders: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 note[text]:'a new-tuple: b'", Record{
			Kind: KindUpdate, Table: orders, HasOldKey: true,
			OldKey:  []Column{{Name: "id", Type: "integer", Value: "1"}},
			Columns: []Column{{Name: "id", Type: "integer", Value: "2"}, {Name: "note", Type: "text", Value: "a new-tuple: b", Quoted: true}},
		}},
		{"update empty old-key", "table public.orders: UPDATE: old-key: new-tuple: a[text]:null", Record{
			Kind: KindUpdate, Table: orders, HasOldKey: true,
			Columns: []Column{{Name: "a", Type: "text", Null: true}},
		}},
		{"update old-key column named new-tuple", `table public.orders: UPDATE: old-key: "new-tuple"[integer]:1 new-tuple: "new-tuple"[integer]:2`, Record{
			Kind: KindUpdate, Table: orders, HasOldKey: true,
			OldKey:  []Column{{Name: "new-tuple", Type: "integer", Value: "1"}},
			Columns: []Column{{Name: "new-tuple", Type: "integer", Value: "2"}},
		}},
		{"update no tuple", "table public.orders: UPDATE: (no-tuple-data)", Record{Kind: KindUpdate, Table: orders, NoTupleData: true}},
		{"delete", "table public.orders: DELETE: id[integer]:1", Record{
			Kind: KindDelete, Table: orders, Columns: []Column{{Name: "id", Type: "integer", Value: "1"}}}},
		{"delete no tuple", "table public.orders: DELETE: (no-tuple-data)", Record{Kind: KindDelete, Table: orders, NoTupleData: true}},
		{"insert no tuple", "table public.orders: INSERT: (no-tuple-data)", Record{Kind: KindInsert, Table: orders, NoTupleData: true}},
		{"insert no columns", "table public.orders: INSERT:", Record{Kind: KindInsert, Table: orders}},
		{"truncate one", "table public.orders: TRUNCATE: (no-flags)", Record{Kind: KindTruncate, Tables: []Table{orders}}},
		{"truncate many", `table public.a, "S"."b, c": TRUNCATE: restart_seqs cascade`, Record{
			Kind: KindTruncate, Tables: []Table{{"public", "a"}, {"S", "b, c"}}, Restart: true, Cascade: true}},
		{"truncate cascade", "table public.a: TRUNCATE: cascade", Record{Kind: KindTruncate, Tables: []Table{{"public", "a"}}, Cascade: true}},
		{"truncate restart", "table public.a: TRUNCATE: restart_seqs", Record{Kind: KindTruncate, Tables: []Table{{"public", "a"}}, Restart: true}},
		{"message", "message: transactional: 1 prefix: foo, sz: 5 content:hello", Record{
			Kind: KindMessage, Transactional: true, Prefix: "foo", Content: "hello"}},
		{"message multiline", "message: transactional: 0 prefix: p, sz: 14 content:a\nb, sz: 1 con", Record{
			Kind: KindMessage, Prefix: "p", Content: "a\nb, sz: 1 con"}},
		{"message prefix with sz", "message: transactional: 0 prefix: a, sz: 9 content:x, sz: 0 content:", Record{
			Kind: KindMessage, Prefix: "a, sz: 9 content:x", Content: ""}},
		{"message empty", "message: transactional: 0 prefix: , sz: 0 content:", Record{Kind: KindMessage}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.text))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.text, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q)\n got %+v\nwant %+v", tt.text, got, tt.want)
			}
			// Render is the inverse.
			again, err := Parse(Render(got))
			if err != nil {
				t.Fatalf("Parse(Render(%+v)) = %q: %v", got, Render(got), err)
			}
			if !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip through %q\n got %+v\nwant %+v", Render(got), again, got)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		text   string
		table  string
		offset int
		reason string
	}{
		{"", "", 0, "unknown record"},
		{"INSERT", "", 0, "unknown record"},
		{"BEGIN x", "", 6, "bad transaction id"},
		{"BEGIN 99999999999", "", 6, "bad transaction id"},
		{"BEGINX", "", 5, "expected space or end after BEGIN"},
		{"BEGIN 12 ", "", 8, "unexpected text after BEGIN"},
		{"COMMIT 12 (at x)", "", 14, "bad commit time"},
		{"COMMIT 12 (at 2024-01-02 03:04:05+00", "", 36, "unterminated"},
		{"COMMIT 12 (at 2024-13-02 03:04:05+00)", "", 14, "bad month"},
		{"COMMIT 12 [at]", "", 10, `expected "(at <time>)"`},
		{"table public.orders: INSERT: id[integer]:1 note[text]:'abc", "public.orders", 54, "unterminated quoted literal"},
		{"table public.orders: INSERT: id[integer]:1 note[text]:'abc'x", "public.orders", 59, "unexpected text after quoted literal"},
		{"table public.orders: INSERT: id[integer:1", "public.orders", 32, "unterminated column type"},
		{"table public.orders: INSERT: id[]:1", "public.orders", 32, "empty column type"},
		{`table public.orders: INSERT: id["int]:1`, "public.orders", 32, "unterminated quoted name in column type"},
		{"table public.orders: INSERT: id[integer]:", "public.orders", 41, "missing column value"},
		{"table public.orders: INSERT: id[integer]:1  x", "public.orders", 43, "expected identifier"},
		{"table public.orders: INSERT: id", "public.orders", 31, `expected "["`},
		{"table public.orders: INSERT:x", "public.orders", 28, "expected space before column"},
		{"table public.orders: UPSERT: id[integer]:1", "public.orders", 21, "unknown action"},
		{"table public.orders INSERT:", "public.orders", 19, `expected ": " or ", "`},
		{"table public: INSERT:", "", 12, `expected "."`},
		{`table "Weird.Schema"."T: INSERT:`, "", 21, "unterminated quoted identifier"},
		{`table "Weird.Schema"."T": UPDATE: old-key: id[integer]:1`, `"Weird.Schema"."T"`, 56, `expected " new-tuple:"`},
		{"table public.orders: DELETE: (no-tuple-data) x", "public.orders", 44, "unexpected text after (no-tuple-data)"},
		{"table public.a, public.b: INSERT: id[integer]:1", "public.a, public.b", 26, "INSERT names more than one table"},
		{"table public.a: TRUNCATE: wipe", "public.a", 25, "expected restart_seqs, cascade or (no-flags)"},
		{"table public.a: TRUNCATE: cascade restart_seqs", "public.a", 33, "unexpected text after TRUNCATE flags"},
		{"message: transactional: 2 prefix: p, sz: 1 content:x", "", 24, "transactional flag"},
		{"message: transactional: 1 prefix: p, sz: 2 content:x", "", 35, "does not match sz"},
		{"message: transactional: 1 prefix: p content:x", "", 34, `missing ", sz: <n> content:"`},
		{"message: transactional: 1", "", 25, `expected " prefix: "`},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.text))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) = %v, want *ParseError", tt.text, err)
			continue
		}
		if pe.Table != tt.table || pe.Offset != tt.offset || !strings.Contains(pe.Reason, tt.reason) {
			t.Errorf("Parse(%q) = table %q offset %d reason %q, want table %q offset %d reason containing %q",
				tt.text, pe.Table, pe.Offset, pe.Reason, tt.table, tt.offset, tt.reason)
		}
	}
}

func TestParseErrorMessage(t *testing.T) {
	_, err := Parse([]byte("table public.orders: INSERT: id[integer]:1 note[text]:'abc def ghi"))
	want := "parse test_decoding: table public.orders: offset 54: unterminated quoted literal"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
	e := &ParseError{Line: 3, Offset: 0, Reason: "x"}
	if got := e.Error(); got != "parse test_decoding: line 3: offset 0: x" {
		t.Fatalf("error = %s", got)
	}
}

func TestParseIntoReuses(t *testing.T) {
	var rec Record
	if err := ParseInto([]byte("table public.t: UPDATE: old-key: a[integer]:1 b[integer]:2 new-tuple: a[integer]:3 b[integer]:4"), &rec); err != nil {
		t.Fatal(err)
	}
	cols := &rec.Columns[:1][0]
	if err := ParseInto([]byte("table public.u: INSERT: c[text]:'x'"), &rec); err != nil {
		t.Fatal(err)
	}
	if &rec.Columns[0] != cols {
		t.Errorf("ParseInto did not reuse the Columns array")
	}
	want := Record{Kind: KindInsert, Table: Table{"public", "u"}, Columns: []Column{{Name: "c", Type: "text", Value: "x", Quoted: true}}, OldKey: []Column{}}
	if !reflect.DeepEqual(rec, want) {
		t.Fatalf("got %+v\nwant %+v", rec, want)
	}
	if err := ParseInto([]byte("BEGIN 5"), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Kind != KindBegin || rec.XID != 5 || len(rec.Columns) != 0 || rec.Table != (Table{}) {
		t.Fatalf("stale fields after ParseInto: %+v", rec)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		_ = ParseInto([]byte("table public.t: UPDATE: old-key: a[integer]:1 b[integer]:2 new-tuple: a[integer]:3 b[text]:'it''s'"), &rec)
	}); allocs > 3 {
		t.Errorf("ParseInto allocates %v times per record, want at most 3", allocs)
	}
}

func TestKindString(t *testing.T) {
	want := map[Kind]string{KindBegin: "BEGIN", KindCommit: "COMMIT", KindInsert: "INSERT", KindUpdate: "UPDATE",
		KindDelete: "DELETE", KindTruncate: "TRUNCATE", KindMessage: "MESSAGE", 0: "Kind(0)", 99: "Kind(99)"}
	for k, s := range want {
		if got := k.String(); got != s {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, s)
		}
	}
	for k := KindBegin; k <= KindMessage; k++ {
		b, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Kind
		if err := back.UnmarshalText(b); err != nil || back != k {
			t.Errorf("Kind text round trip of %v: %v %v", k, back, err)
		}
	}
}

func TestQuoteIdentifier(t *testing.T) {
	tests := map[string]string{
		"orders":             "orders",
		"_x1":                "_x1",
		"Orders":             `"Orders"`,
		"1abc":               `"1abc"`,
		"":                   `""`,
		"a b":                `"a b"`,
		`a"b`:                `"a""b"`,
		"user":               `"user"`,
		"select":             `"select"`,
		"name":               "name", // unreserved keyword
		"text":               "text", // unreserved keyword
		"int":                `"int"`,
		"ключ":               `"ключ"`,
		"dollar$":            `"dollar$"`,
		"Mixed Case.Table*>": `"Mixed Case.Table*>"`,
	}
	for in, want := range tests {
		if got := QuoteIdentifier(in); got != want {
			t.Errorf("QuoteIdentifier(%q) = %s, want %s", in, got, want)
		}
	}
	if got := (Table{Schema: "Weird.Schema", Name: "t"}).String(); got != `"Weird.Schema".t` {
		t.Errorf("Table.String() = %s", got)
	}
}
