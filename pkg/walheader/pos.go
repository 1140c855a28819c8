package walheader

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// Pos is a source position (docs/DESIGN.md §2.3): Base is the end LSN of the
// previous COMMIT decoded in the capture session (the slot's confirmed
// position for the session's first transaction; in --stdin mode the run's
// epoch), Index counts the change records of the transaction from 0.
// Positions order changes the way the source committed them.
type Pos struct {
	Base  uint64
	Index uint64
}

// IsZero reports whether p is the zero position (none known).
func (p Pos) IsZero() bool { return p == Pos{} }

// Compare orders positions: -1 when p is before q, 0 when equal, +1 after.
func (p Pos) Compare(q Pos) int {
	if c := cmp.Compare(p.Base, q.Base); c != 0 {
		return c
	}
	return cmp.Compare(p.Index, q.Index)
}

// Less reports whether p is before q.
func (p Pos) Less(q Pos) bool { return p.Compare(q) < 0 }

// String renders p as <base LSN X/Y>:<index>, e.g. "0/16B3748:3".
func (p Pos) String() string {
	var b [48]byte
	return string(p.AppendText(b[:0]))
}

// AppendText appends what String renders to dst (capture renders a
// position per change: this is that path without fmt).
func (p Pos) AppendText(dst []byte) []byte {
	dst = appendHex(dst, p.Base>>32)
	dst = append(dst, '/')
	dst = appendHex(dst, p.Base&0xFFFFFFFF)
	dst = append(dst, ':')
	return strconv.AppendUint(dst, p.Index, 10)
}

// appendHex appends v in upper-case hex, as Postgres prints LSNs.
func appendHex(dst []byte, v uint64) []byte {
	const digits = "0123456789ABCDEF"
	var b [16]byte
	i := len(b)
	for {
		i--
		b[i] = digits[v&0xF]
		v >>= 4
		if v == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}

// ParsePos parses what String renders.
func ParsePos(s string) (Pos, error) {
	lsn, idx, ok := strings.Cut(s, ":")
	hi, lo, slash := strings.Cut(lsn, "/")
	if !ok || !slash || hi == "" || lo == "" || idx == "" {
		return Pos{}, fmt.Errorf("parse position %q: want X/Y:n", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return Pos{}, fmt.Errorf("parse position %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return Pos{}, fmt.Errorf("parse position %q: %w", s, err)
	}
	i, err := strconv.ParseUint(idx, 10, 64)
	if err != nil {
		return Pos{}, fmt.Errorf("parse position %q: %w", s, err)
	}
	return Pos{Base: h<<32 | l, Index: i}, nil
}

// MsgIDForPos is the Nats-Msg-Id of a message on subject holding the
// changes from first to last: "<subject>:<first>" for one change, else
// "<subject>:<first>-<last>". The subject is part of it because positions
// are per subject (docs/DESIGN.md §2.3): two tables' changes of one
// transaction can share a position. suffix, when not empty, is appended
// after a colon: "p<k>" for part k of a split record.
func MsgIDForPos(subject string, first, last Pos, suffix string) string {
	id := subject + ":" + first.String()
	if last != first && !last.IsZero() {
		id += "-" + last.String()
	}
	if suffix != "" {
		id += ":" + suffix
	}
	return id
}
