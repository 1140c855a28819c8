package sqltok

import (
	"strings"
	"testing"
)

func TestTokenize(t *testing.T) {
	cases := []struct {
		in   string
		want string // kind:text per significant token
	}{
		{`SELECT "a""b", 'it''s', 'x\'y', E'\\', $$a;b$$, $t$ $$ $t$, $1`,
			`ident:SELECT quoted-ident:"a""b" punct:, string:'it''s' punct:, string:'x\'y' punct:, string:E'\\' punct:, string:$$a;b$$ punct:, string:$t$ $$ $t$ punct:, param:$1`},
		{"a::int -- c;\n/* x /* y */ ; */ b", "ident:a op::: ident:int ident:b"},
		{"1.5e3 .5 1..2 x.y", "number:1.5e3 number:.5 number:1 op:. number:.2 ident:x op:. ident:y"},
		{"a<>b>=c", "ident:a op:<> ident:b op:>= ident:c"},
		{`U&"d\0061t" b'01' X'ff' n'x'`, `quoted-ident:U&"d\0061t" string:b'01' string:X'ff' string:n'x'`},
	}
	for _, c := range cases {
		toks, err := Tokenize(c.in)
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if Join(toks) != c.in {
			t.Fatalf("%q: tokens do not join back: %q", c.in, Join(toks))
		}
		var got []string
		for _, tk := range Significant(toks) {
			got = append(got, tk.Kind.String()+":"+tk.Text)
		}
		if g := strings.Join(got, " "); g != c.want {
			t.Fatalf("%q:\n got %s\nwant %s", c.in, g, c.want)
		}
	}
}

func TestTokenizeErrors(t *testing.T) {
	for _, in := range []string{`'abc`, `"abc`, `/* x`, `$$ x`, `'a\'`, `E'\'`} {
		if _, err := Tokenize(in); err == nil {
			t.Fatalf("%q: no error", in)
		}
	}
}

func TestSplitStatements(t *testing.T) {
	toks, err := Tokenize("SELECT ';'; ; SELECT (1;2); -- only a comment\n")
	if err != nil {
		t.Fatal(err)
	}
	parts := SplitStatements(toks)
	if len(parts) != 2 || strings.TrimSpace(Join(parts[0])) != "SELECT ';'" || strings.TrimSpace(Join(parts[1])) != "SELECT (1;2)" {
		var got []string
		for _, p := range parts {
			got = append(got, Join(p))
		}
		t.Fatalf("got %q", got)
	}
}

func TestStringValue(t *testing.T) {
	cases := map[string]string{
		`'a''b'`:           "a'b",
		`'a\'b'`:           "a'b",
		`'\\N'`:            `\N`,
		`'\t\n\x41\101\q'`: "\t\nAAq",
		`E'x\\y'`:          `x\y`,
		`$q$a'b\$q$`:       `a'b\`,
	}
	for in, want := range cases {
		toks, err := Tokenize(in)
		if err != nil || len(toks) != 1 {
			t.Fatalf("%q: %v %v", in, toks, err)
		}
		got, ok := toks[0].StringValue()
		if !ok || got != want {
			t.Fatalf("%q: got %q %v, want %q", in, got, ok, want)
		}
	}
	if _, ok := (Token{Kind: Ident, Text: "x"}).StringValue(); ok {
		t.Fatal("ident has a string value")
	}
}

// FuzzTokenize: tokens always join back to the input, and never split a
// quoted token.
func FuzzTokenize(f *testing.F) {
	for _, s := range []string{`SELECT 'a''b'`, `"x""y"`, `$$;$$`, `$a$ $$ $a$`, "-- c\n", "/* /* */ */", `E'\''`, `'\\'`, `U&"x"`, "$1", "a::b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		toks, err := Tokenize(in)
		if err != nil {
			return
		}
		if Join(toks) != in {
			t.Fatalf("%q: joined %q", in, Join(toks))
		}
		for _, p := range SplitStatements(toks) {
			for _, tk := range p {
				if tk.Text == "" {
					t.Fatalf("%q: empty token", in)
				}
			}
		}
	})
}
