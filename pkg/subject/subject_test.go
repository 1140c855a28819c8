package subject

import (
	"errors"
	"strings"
	"testing"
	"unicode"
)

func TestEscapeToken(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"orders", "orders"},
		{"Order_Items2", "Order_Items2"},
		{"", "~"},
		{"a.b", "a~2Eb"},
		{"my table", "my~20table"},
		{"*", "~2A"},
		{">", "~3E"},
		{`"quoted"`, "~22quoted~22"},
		{"'", "~27"},
		{"~", "~7E"},
		{"~2E", "~7E2E"},
		{"-", "~2D"},
		{"a-b", "a~2Db"},
		{"tab\tnl\n", "tab~09nl~0A"},
		{"é", "~C3~A9"},
		{"表", "~E8~A1~A8"},
		{"/\\", "~2F~5C"},
		{"=", "~3D"},
		{"\x00\xff", "~00~FF"},
	} {
		got := EscapeToken(tc.in)
		if got != tc.want {
			t.Errorf("EscapeToken(%q) = %q, want %q", tc.in, got, tc.want)
		}
		back, err := UnescapeToken(got)
		if err != nil || back != tc.in {
			t.Errorf("UnescapeToken(%q) = %q, %v; want %q", got, back, err, tc.in)
		}
	}
}

func TestUnescapeTokenRejects(t *testing.T) {
	for _, tok := range []string{
		"",       // a subject never has an empty token
		"a.b",    // unescaped dot
		"a b",    // unescaped space
		"a-b",    // '-' must be escaped
		"a~",     // truncated
		"a~2",    // truncated
		"~2e",    // lower-case hex
		"~G0",    // not hex
		"~41",    // 'A' needs no escaping
		"~5F",    // '_' needs no escaping
		"~~",     // truncated escape of '~'
		"é",      // non-ASCII must be escaped
		"*", ">", // wildcards
	} {
		if got, err := UnescapeToken(tok); err == nil {
			t.Errorf("UnescapeToken(%q) = %q, want an error", tok, got)
		} else if !errors.Is(err, ErrInvalid) {
			t.Errorf("UnescapeToken(%q) error %v does not wrap ErrInvalid", tok, err)
		}
	}
}

func TestSubjectAndParse(t *testing.T) {
	for _, tc := range []struct {
		t    Table
		want string
	}{
		{Table{"shop", "public", "orders"}, "redms.wal.shop.public.orders"},
		{Table{"shop", "Sales Data", "line.items"}, "redms.wal.shop.Sales~20Data.line~2Eitems"},
		{Table{"my-db", "s*", "t>"}, "redms.wal.my~2Ddb.s~2A.t~3E"},
		{Table{"", "", ""}, "redms.wal.~.~.~"},
		{Table{"db", "ü", `"x"`}, "redms.wal.db.~C3~BC.~22x~22"},
	} {
		got := Subject(tc.t)
		if got != tc.want {
			t.Errorf("Subject(%+v) = %q, want %q", tc.t, got, tc.want)
		}
		back, err := Parse(got)
		if err != nil || back != tc.t {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", got, back, err, tc.t)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"redms.wal",
		"redms.wal.",
		"redms.wal.db.public",
		"redms.wal.db.public.t.extra",
		"redms.wal..public.t",
		"other.wal.db.public.t",
		"redms.walx.db.public.t",
		"redms.wal.db.public.a-b",
		"redms.wal.db.public.*",
		"redms.wal.>",
	} {
		if got, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", s, got)
		} else if !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) error %v does not wrap ErrInvalid", s, err)
		}
	}
}

func TestConsumerName(t *testing.T) {
	for _, tc := range []struct {
		t    Table
		want string
	}{
		{Table{"shop", "public", "orders"}, "redms-shop-public-orders"},
		{Table{"a-b", "c", "d"}, "redms-a~2Db-c-d"},
		{Table{"a", "b-c", "d"}, "redms-a-b~2Dc-d"},
		{Table{"shop", "my schema", "t.1"}, "redms-shop-my~20schema-t~2E1"},
		{Table{"", "", ""}, "redms-~-~-~"},
	} {
		if got := ConsumerName(tc.t); got != tc.want {
			t.Errorf("ConsumerName(%+v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}

func TestConsumerNameCutsLongNames(t *testing.T) {
	long := Table{"shop", "public", strings.Repeat("x", 300)}
	got := ConsumerName(long)
	if len(got) != 200 {
		t.Fatalf("len(ConsumerName) = %d, want 200", len(got))
	}
	if !strings.HasPrefix(got, "redms-shop-public-xxxx") {
		t.Fatalf("cut name %q lost its readable prefix", got)
	}
	other := Table{"shop", "public", strings.Repeat("x", 299) + "y"}
	if ConsumerName(other) == got {
		t.Fatalf("two long names with the same first 183 bytes collide: %q", got)
	}
	// Exactly 200 bytes stays whole.
	edge := Table{"d", "s", strings.Repeat("t", 200-len("redms-d-s-"))}
	if got := ConsumerName(edge); got != "redms-d-s-"+edge.Name {
		t.Fatalf("200-byte name was cut: %q", got)
	}
	edge.Name += "t"
	if got := ConsumerName(edge); len(got) != 200 || got == "redms-d-s-"+edge.Name[:190] {
		t.Fatalf("201-byte name not cut with a hash: %q", got)
	}
}

func TestKVKey(t *testing.T) {
	for _, tc := range []struct {
		t    Table
		want string
	}{
		{Table{"shop", "public", "orders"}, "redms-shop-public-orders"},
		{Table{"shop", "my schema", "a-b"}, "redms-shop-my=20schema-a=2Db"},
	} {
		if got := KVKey(tc.t); got != tc.want {
			t.Errorf("KVKey(%+v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}

// validToken reports whether tok can be one NATS subject token.
func validToken(tok string) bool {
	if tok == "" {
		return false
	}
	for _, r := range tok {
		if r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || r > unicode.MaxASCII {
			return false
		}
	}
	return true
}

// validConsumer reports whether name is a JetStream durable consumer name.
func validConsumer(name string) bool {
	return name != "" && !strings.ContainsAny(name, ">*. /\\\t\r\n\f\v") && !strings.ContainsFunc(name, func(r rune) bool {
		return unicode.IsSpace(r) || r > unicode.MaxASCII
	})
}

// validKVKey mirrors nats.go jetstream's key rule ^[-/_=.a-zA-Z0-9]+$.
func validKVKey(key string) bool {
	if key == "" {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(keeps(c) || strings.IndexByte("-/=.", c) >= 0) {
			return false
		}
	}
	return true
}

func FuzzEscapeRoundTrip(f *testing.F) {
	for _, s := range []string{"", "a", "a.b", "a b", "*", ">", `"`, "'", "~", "~7E", "-", "ÄÖ", "\x00", "\xff\xfe", "a\nb", "A_b9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := EscapeToken(s)
		if !validToken(tok) {
			t.Fatalf("EscapeToken(%q) = %q is not a valid subject token", s, tok)
		}
		if strings.Contains(tok, "-") {
			t.Fatalf("EscapeToken(%q) = %q contains '-'", s, tok)
		}
		back, err := UnescapeToken(tok)
		if err != nil || back != s {
			t.Fatalf("UnescapeToken(EscapeToken(%q)) = %q, %v", s, back, err)
		}
		// Any token that unescapes is canonical: escaping gives it back.
		if u, err := UnescapeToken(s); err == nil && EscapeToken(u) != s {
			t.Fatalf("UnescapeToken(%q) = %q, but EscapeToken gives %q: two tokens for one identifier", s, u, EscapeToken(u))
		}
	})
}

func FuzzSubjectRoundTrip(f *testing.F) {
	f.Add("shop", "public", "orders")
	f.Add("", "", "")
	f.Add("a.b", "c d", "e*>")
	f.Add("my-db", `"Q"`, "~7E")
	f.Fuzz(func(t *testing.T, db, schema, name string) {
		tbl := Table{db, schema, name}
		s := Subject(tbl)
		toks := strings.Split(s, ".")
		if len(toks) != 5 {
			t.Fatalf("Subject(%+v) = %q has %d tokens, want 5", tbl, s, len(toks))
		}
		for _, tok := range toks {
			if !validToken(tok) {
				t.Fatalf("Subject(%+v) = %q has invalid token %q", tbl, s, tok)
			}
		}
		back, err := Parse(s)
		if err != nil || back != tbl {
			t.Fatalf("Parse(Subject(%+v)) = %+v, %v", tbl, back, err)
		}
		c := ConsumerName(tbl)
		if !validConsumer(c) || len(c) > 200 {
			t.Fatalf("ConsumerName(%+v) = %q is not a valid consumer name", tbl, c)
		}
		if k := KVKey(tbl); !validKVKey(k) {
			t.Fatalf("KVKey(%+v) = %q is not a valid KV key", tbl, k)
		}
	})
}

func FuzzNoCollisions(f *testing.F) {
	f.Add("a", "b", "c", "a", "b", "d")
	f.Add("a-b", "c", "d", "a", "b-c", "d")
	f.Add("a.b", "c", "d", "a", "b.c", "d")
	f.Add("", "a", "b", "a", "", "b")
	f.Add("~", "x", "y", "", "x", "y")
	f.Fuzz(func(t *testing.T, db1, s1, n1, db2, s2, n2 string) {
		a, b := Table{db1, s1, n1}, Table{db2, s2, n2}
		if a == b {
			return
		}
		if Subject(a) == Subject(b) {
			t.Fatalf("Subject collision: %+v and %+v both give %q", a, b, Subject(a))
		}
		if ConsumerName(a) == ConsumerName(b) {
			t.Fatalf("ConsumerName collision: %+v and %+v both give %q", a, b, ConsumerName(a))
		}
		if KVKey(a) == KVKey(b) {
			t.Fatalf("KVKey collision: %+v and %+v both give %q", a, b, KVKey(a))
		}
	})
}
