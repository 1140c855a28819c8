// Package subject maps a Postgres table (database, schema, table) to the
// JetStream subject its changes travel on, redms.wal.<db>.<schema>.<table>,
// and to the durable consumer name that reads it, and back.
//
// Postgres identifiers may contain any character, including the ones NATS
// gives meaning to ('.', '*', '>', whitespace). Each identifier therefore
// becomes one subject token by a reversible escaping: bytes [A-Za-z0-9_]
// stay, every other byte becomes '~' and two upper-case hex digits. The empty
// identifier (which Postgres does not allow, but callers might pass) becomes
// the lone token "~", which no non-empty identifier produces. Escaping is a
// bijection between byte strings and valid tokens: UnescapeToken accepts only
// what EscapeToken produces.
package subject

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

const (
	// Prefix starts every WAL subject.
	Prefix = "redms.wal"
	// Wildcard matches every WAL subject (the stream's subject filter).
	Wildcard = Prefix + ".>"
	// consumerPrefix starts every consumer name.
	consumerPrefix = "redms-"
	// maxConsumerName is the longest consumer name left whole; longer ones
	// are cut to cutConsumerName bytes plus "-" and 16 hex digits of SHA-256.
	maxConsumerName = 200
	cutConsumerName = 183
	// escapeByte introduces an escaped byte; emptyToken is the empty string.
	escapeByte = '~'
	emptyToken = "~"
)

// Table names one source table.
type Table struct {
	DB, Schema, Name string
}

// String is schema.table as an operator reads it (unquoted, unescaped).
func (t Table) String() string { return t.Schema + "." + t.Name }

// ErrInvalid is wrapped by every parse error of this package.
var ErrInvalid = errors.New("invalid subject")

const upperHex = "0123456789ABCDEF"

func keeps(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_'
}

// EscapeToken turns an identifier into one subject token: [A-Za-z0-9_]
// stay, every other byte becomes ~XX (upper-case hex), "" becomes "~".
func EscapeToken(s string) string {
	if s == "" {
		return emptyToken
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keeps(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte(escapeByte)
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&0xF])
	}
	return b.String()
}

// UnescapeToken inverts EscapeToken. It rejects every token EscapeToken
// cannot produce: bytes outside [A-Za-z0-9_~], a '~' not followed by two
// upper-case hex digits, and an escaped byte that needed no escaping.
func UnescapeToken(tok string) (string, error) {
	if tok == emptyToken {
		return "", nil
	}
	if tok == "" {
		return "", fmt.Errorf("%w: empty token", ErrInvalid)
	}
	var b strings.Builder
	b.Grow(len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if keeps(c) {
			b.WriteByte(c)
			continue
		}
		if c != escapeByte {
			return "", fmt.Errorf("%w: token %q: byte %q at %d must be escaped", ErrInvalid, tok, c, i)
		}
		if i+2 >= len(tok) {
			return "", fmt.Errorf("%w: token %q: truncated escape at %d", ErrInvalid, tok, i)
		}
		hi, lo := unhex(tok[i+1]), unhex(tok[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("%w: token %q: escape at %d is not ~ and two upper-case hex digits", ErrInvalid, tok, i)
		}
		d := byte(hi<<4 | lo)
		if keeps(d) {
			return "", fmt.Errorf("%w: token %q: %q at %d needs no escaping", ErrInvalid, tok, d, i)
		}
		b.WriteByte(d)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// Subject is redms.wal.<db>.<schema>.<table>, each part escaped.
func Subject(t Table) string {
	return Prefix + "." + EscapeToken(t.DB) + "." + EscapeToken(t.Schema) + "." + EscapeToken(t.Name)
}

// Parse inverts Subject.
func Parse(subject string) (Table, error) {
	rest, ok := strings.CutPrefix(subject, Prefix+".")
	if !ok {
		return Table{}, fmt.Errorf("%w: %q is not under %s", ErrInvalid, subject, Prefix)
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return Table{}, fmt.Errorf("%w: %q has %d tokens after %s, want 3 (db, schema, table)", ErrInvalid, subject, len(parts), Prefix)
	}
	var out [3]string
	for i, p := range parts {
		s, err := UnescapeToken(p)
		if err != nil {
			return Table{}, fmt.Errorf("parse subject %q: %w", subject, err)
		}
		out[i] = s
	}
	return Table{DB: out[0], Schema: out[1], Name: out[2]}, nil
}

// ConsumerName is the durable consumer that reads t's subject:
// redms-<db>-<schema>-<table> with escaped tokens ('-' is always escaped
// inside a token, so it only separates). Names longer than 200 bytes are cut
// to 183 bytes, then "-" and the first 16 hex digits of the SHA-256 of the
// whole name. The result is ASCII from [A-Za-z0-9_~-].
func ConsumerName(t Table) string {
	name := consumerPrefix + EscapeToken(t.DB) + "-" + EscapeToken(t.Schema) + "-" + EscapeToken(t.Name)
	if len(name) <= maxConsumerName {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return name[:cutConsumerName] + "-" + hex.EncodeToString(sum[:8])
}

// KVKey is t's key in the loader's KV buckets: ConsumerName with every '~'
// replaced by '=', because JetStream KV keys allow only [-/_=.a-zA-Z0-9]
// (and '=' never occurs in a consumer name, so the mapping is one to one).
func KVKey(t Table) string {
	return strings.ReplaceAll(ConsumerName(t), string(escapeByte), "=")
}
