package change

import (
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// Header names of docs/CONTRACTS.md (to be replaced by pkg/walheader).
const (
	hdrMsgID      = "Nats-Msg-Id"
	hdrLSN        = "Redms-Lsn"
	hdrOrdinal    = "Redms-Ordinal"
	hdrCommitLSN  = "Redms-Commit-Lsn"
	hdrXID        = "Redms-Xid"
	hdrCommitTime = "Redms-Commit-Time"
	hdrKeys       = "Redms-Keys"
	hdrKeySource  = "Redms-Key-Source"
	hdrLeaf       = "Redms-Leaf"
)

func setChange(h nats.Header, db, lsn string, ord int, xid uint32, keys, source string) {
	o := strconv.Itoa(ord)
	h[hdrMsgID] = []string{db + ":" + lsn + ":" + o}
	h[hdrLSN] = []string{lsn}
	h[hdrOrdinal] = []string{o}
	if xid != 0 {
		h[hdrXID] = []string{strconv.FormatUint(uint64(xid), 10)}
	}
	h[hdrKeys] = []string{keys}
	h[hdrKeySource] = []string{source}
}

func setCommit(h nats.Header, lsn, at string) {
	h[hdrCommitLSN] = []string{lsn}
	if at != "" {
		h[hdrCommitTime] = []string{at}
	}
}

func subjectOf(db, schema, table string) string {
	return "redms.wal." + escape(db) + "." + escape(schema) + "." + escape(table)
}

func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("~")
		b.WriteString(strings.ToUpper(strconv.FormatUint(uint64(c)|0x100, 16)[1:]))
	}
	return b.String()
}

// SplitSubject returns the unescaped db, schema and table of a WAL subject.
func SplitSubject(subj string) (db, schema, table string, ok bool) {
	parts := strings.Split(subj, ".")
	if len(parts) != 5 || parts[0] != "redms" || parts[1] != "wal" {
		return "", "", "", false
	}
	var err error
	out := make([]string, 3)
	for i, p := range parts[2:] {
		if out[i], err = unescape(p); err != nil {
			return "", "", "", false
		}
	}
	return out[0], out[1], out[2], true
}

func unescape(tok string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		if tok[i] != '~' {
			b.WriteByte(tok[i])
			continue
		}
		if i+2 >= len(tok) {
			return "", strconv.ErrSyntax
		}
		v, err := strconv.ParseUint(tok[i+1:i+3], 16, 8)
		if err != nil {
			return "", err
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// Header names, exported for the dry-run writer and tests.
const (
	HeaderMsgID      = hdrMsgID
	HeaderLSN        = hdrLSN
	HeaderOrdinal    = hdrOrdinal
	HeaderCommitLSN  = hdrCommitLSN
	HeaderXID        = hdrXID
	HeaderCommitTime = hdrCommitTime
	HeaderKeys       = hdrKeys
	HeaderKeySource  = hdrKeySource
	HeaderLeaf       = hdrLeaf
)
