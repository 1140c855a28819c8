// Package sqltok splits SQL text into tokens the way Postgres' lexer does for
// the parts that matter to a rewriter: string literals (standard, E”, B”,
// X”, N”, U&”), dollar-quoted strings, quoted identifiers, comments (line
// and nested block), parameters, numbers and operators. Every token keeps its
// raw text, so concatenating the tokens gives back the input exactly and a
// rewriter never touches quoted content by accident.
package sqltok

import (
	"fmt"
	"strings"
)

// Kind classifies a token.
type Kind int

// Token kinds.
const (
	Space       Kind = iota // whitespace
	Comment                 // -- line or /* block */ comment
	Ident                   // unquoted identifier or keyword
	QuotedIdent             // "identifier"
	String                  // any string literal, including dollar-quoted
	Number                  // numeric literal
	Param                   // $n
	Op                      // operator characters, including :: and .
	Punct                   // ( ) , ; [ ]
)

func (k Kind) String() string {
	switch k {
	case Space:
		return "space"
	case Comment:
		return "comment"
	case Ident:
		return "ident"
	case QuotedIdent:
		return "quoted-ident"
	case String:
		return "string"
	case Number:
		return "number"
	case Param:
		return "param"
	case Op:
		return "op"
	case Punct:
		return "punct"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Token is one lexical unit; Pos is its byte offset in the input.
type Token struct {
	Kind Kind
	Text string
	Pos  int
}

// Is reports whether t is the unquoted keyword kw (case-insensitive).
func (t Token) Is(kw string) bool {
	return t.Kind == Ident && strings.EqualFold(t.Text, kw)
}

// IsPunct reports whether t is the punctuation or operator p.
func (t Token) IsPunct(p string) bool {
	return (t.Kind == Punct || t.Kind == Op) && t.Text == p
}

// IdentValue is the identifier t names: unquoted identifiers fold to lower
// case, quoted ones lose their quotes and doubled quotes.
func (t Token) IdentValue() string {
	switch t.Kind {
	case Ident:
		return strings.ToLower(t.Text)
	case QuotedIdent:
		return strings.ReplaceAll(t.Text[1:len(t.Text)-1], `""`, `"`)
	}
	return t.Text
}

// StringValue is the content of a string literal '…' or E'…' (Redshift
// reads backslash escapes in both), or of a dollar-quoted one; ok is false
// for other tokens.
func (t Token) StringValue() (string, bool) {
	if t.Kind != String {
		return "", false
	}
	s := t.Text
	if strings.HasPrefix(s, "$") {
		end := strings.Index(s[1:], "$") + 2
		return s[end : len(s)-end], true
	}
	if s[0] == 'e' || s[0] == 'E' {
		s = s[1:]
	}
	if s[0] != '\'' {
		return "", false
	}
	return Unescape(s[1 : len(s)-1]), true
}

// Unescape decodes the body of a Redshift string literal: ” is a quote,
// and backslash escapes \b \f \n \r \t, octal \ooo, hex \xhh, and \c = c.
func Unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\'' && i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'x':
			n, v := 0, 0
			for n < 2 && i+1 < len(s) && isHex(s[i+1]) {
				i++
				v = v*16 + hexVal(s[i])
				n++
			}
			if n == 0 {
				b.WriteByte('x')
			} else {
				b.WriteByte(byte(v))
			}
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(e - '0')
			for n := 1; n < 3 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '7'; n++ {
				i++
				v = v*8 + int(s[i]-'0')
			}
			b.WriteByte(byte(v))
		default:
			b.WriteByte(e)
		}
	}
	return b.String()
}

func isHex(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }

func hexVal(c byte) int {
	if isDigit(c) {
		return int(c - '0')
	}
	return int(c|0x20-'a') + 10
}

// Error is a lexical error: an unterminated literal, identifier or comment.
type Error struct {
	Pos int
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("%s at position %d", e.Msg, e.Pos+1) }

// Tokenize splits sql into tokens.
func Tokenize(sql string) ([]Token, error) {
	var toks []Token
	i := 0
	for i < len(sql) {
		start := i
		c := sql[i]
		var kind Kind
		switch {
		case isSpace(c):
			for i < len(sql) && isSpace(sql[i]) {
				i++
			}
			kind = Space
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
			kind = Comment
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			depth := 0
			for {
				if i+1 >= len(sql) {
					return nil, &Error{Pos: start, Msg: "unterminated /* comment"}
				}
				if sql[i] == '/' && sql[i+1] == '*' {
					depth++
					i += 2
					continue
				}
				if sql[i] == '*' && sql[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
					continue
				}
				i++
			}
			kind = Comment
		case c == '\'':
			// Redshift (like Postgres 8.0) reads backslash escapes in
			// ordinary string literals.
			end, err := scanQuoted(sql, i, '\'', true)
			if err != nil {
				return nil, err
			}
			i = end
			kind = String
		case (c == 'e' || c == 'E') && i+1 < len(sql) && sql[i+1] == '\'':
			end, err := scanQuoted(sql, i+1, '\'', true)
			if err != nil {
				return nil, err
			}
			i = end
			kind = String
		case (c == 'b' || c == 'B' || c == 'x' || c == 'X' || c == 'n' || c == 'N') && i+1 < len(sql) && sql[i+1] == '\'':
			end, err := scanQuoted(sql, i+1, '\'', false)
			if err != nil {
				return nil, err
			}
			i = end
			kind = String
		case (c == 'u' || c == 'U') && i+2 < len(sql) && sql[i+1] == '&' && (sql[i+2] == '\'' || sql[i+2] == '"'):
			q := sql[i+2]
			end, err := scanQuoted(sql, i+2, q, false)
			if err != nil {
				return nil, err
			}
			i = end
			kind = String
			if q == '"' {
				kind = QuotedIdent
			}
		case c == '"':
			end, err := scanQuoted(sql, i, '"', false)
			if err != nil {
				return nil, err
			}
			i = end
			kind = QuotedIdent
		case c == '$':
			if i+1 < len(sql) && isDigit(sql[i+1]) {
				i++
				for i < len(sql) && isDigit(sql[i]) {
					i++
				}
				kind = Param
				break
			}
			tagEnd := i + 1
			for tagEnd < len(sql) && isIdentCont(sql[tagEnd]) && sql[tagEnd] != '$' {
				tagEnd++
			}
			if tagEnd < len(sql) && sql[tagEnd] == '$' && (tagEnd == i+1 || !isDigit(sql[i+1])) {
				tag := sql[i : tagEnd+1]
				end := strings.Index(sql[tagEnd+1:], tag)
				if end < 0 {
					return nil, &Error{Pos: start, Msg: "unterminated dollar-quoted string"}
				}
				i = tagEnd + 1 + end + len(tag)
				kind = String
				break
			}
			i++
			kind = Op
		case isIdentStart(c):
			for i < len(sql) && isIdentCont(sql[i]) {
				i++
			}
			kind = Ident
		case isDigit(c) || (c == '.' && i+1 < len(sql) && isDigit(sql[i+1])):
			for i < len(sql) && (isDigit(sql[i]) || sql[i] == '.') {
				if sql[i] == '.' && i+1 < len(sql) && sql[i+1] == '.' {
					break
				}
				i++
			}
			if i < len(sql) && (sql[i] == 'e' || sql[i] == 'E') {
				j := i + 1
				if j < len(sql) && (sql[j] == '+' || sql[j] == '-') {
					j++
				}
				if j < len(sql) && isDigit(sql[j]) {
					i = j
					for i < len(sql) && isDigit(sql[i]) {
						i++
					}
				}
			}
			kind = Number
		case c == '(' || c == ')' || c == ',' || c == ';' || c == '[' || c == ']':
			i++
			kind = Punct
		case c == ':' && i+1 < len(sql) && sql[i+1] == ':':
			i += 2
			kind = Op
		case c == '.':
			i++
			kind = Op
		case isOpChar(c):
			for i < len(sql) && isOpChar(sql[i]) {
				if sql[i] == '-' && i+1 < len(sql) && sql[i+1] == '-' && i > start {
					break
				}
				if sql[i] == '/' && i+1 < len(sql) && sql[i+1] == '*' && i > start {
					break
				}
				i++
			}
			kind = Op
		default:
			i++
			kind = Op
		}
		toks = append(toks, Token{Kind: kind, Text: sql[start:i], Pos: start})
	}
	return toks, nil
}

// scanQuoted scans a literal that opens with quote q at sql[i]; a doubled
// quote is an escaped quote, and with backslash a backslash escapes the next
// byte. It returns the offset just after the closing quote.
func scanQuoted(sql string, i int, q byte, backslash bool) (int, error) {
	start := i
	i++
	for i < len(sql) {
		switch {
		case backslash && sql[i] == '\\':
			i += 2
		case sql[i] == q:
			if i+1 < len(sql) && sql[i+1] == q {
				i += 2
				continue
			}
			return i + 1, nil
		default:
			i++
		}
	}
	what := "quoted string"
	if q == '"' {
		what = "quoted identifier"
	}
	return 0, &Error{Pos: start, Msg: "unterminated " + what}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c >= 0x80 || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentCont(c byte) bool  { return isIdentStart(c) || isDigit(c) || c == '$' }
func isOpChar(c byte) bool     { return strings.IndexByte("+-*/<>=~!@#%^&|`?:", c) >= 0 }

// Significant drops spaces and comments.
func Significant(toks []Token) []Token {
	out := make([]Token, 0, len(toks))
	for _, t := range toks {
		if t.Kind != Space && t.Kind != Comment {
			out = append(out, t)
		}
	}
	return out
}

// SplitStatements splits tokens at top-level semicolons (the semicolons are
// dropped); statements holding only spaces and comments are dropped.
func SplitStatements(toks []Token) [][]Token {
	var out [][]Token
	var cur []Token
	depth := 0
	flush := func() {
		if len(Significant(cur)) > 0 {
			out = append(out, cur)
		}
		cur = nil
	}
	for _, t := range toks {
		if t.Kind == Punct {
			switch t.Text {
			case "(", "[":
				depth++
			case ")", "]":
				depth--
			case ";":
				if depth <= 0 {
					flush()
					depth = 0
					continue
				}
			}
		}
		cur = append(cur, t)
	}
	flush()
	return out
}

// Join concatenates the raw text of toks.
func Join(toks []Token) string {
	var b strings.Builder
	for _, t := range toks {
		b.WriteString(t.Text)
	}
	return b.String()
}
