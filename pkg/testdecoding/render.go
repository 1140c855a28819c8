package testdecoding

import (
	"strconv"
	"time"
)

// Render returns the canonical test_decoding text of rec, without a trailing
// newline: what Postgres would print for it. Parse(Render(rec)) gives rec back
// for every record Parse can return (a COMMIT time comes back in UTC, cut to
// microseconds).
func Render(rec Record) []byte {
	return AppendRecord(nil, rec)
}

// AppendRecord appends Render(rec) to dst.
func AppendRecord(dst []byte, rec Record) []byte {
	switch rec.Kind {
	case KindBegin:
		dst = append(dst, "BEGIN"...)
		if rec.XID != 0 {
			dst = append(dst, ' ')
			dst = strconv.AppendUint(dst, uint64(rec.XID), 10)
		}
	case KindCommit:
		dst = append(dst, "COMMIT"...)
		if rec.XID != 0 {
			dst = append(dst, ' ')
			dst = strconv.AppendUint(dst, uint64(rec.XID), 10)
		}
		if !rec.CommitTime.IsZero() {
			dst = append(dst, " (at "...)
			dst = appendTimestamptz(dst, rec.CommitTime)
			dst = append(dst, ')')
		}
	case KindInsert, KindUpdate, KindDelete:
		dst = append(dst, "table "...)
		dst = appendTable(dst, rec.Table)
		dst = append(dst, ": "...)
		dst = append(dst, rec.Kind.String()...)
		dst = append(dst, ':')
		if rec.Kind == KindUpdate && (rec.HasOldKey || len(rec.OldKey) > 0) {
			dst = append(dst, " old-key:"...)
			dst = appendColumns(dst, rec.OldKey)
			dst = append(dst, " new-tuple:"...)
		}
		if rec.NoTupleData {
			dst = append(dst, " (no-tuple-data)"...)
		} else {
			dst = appendColumns(dst, rec.Columns)
		}
	case KindTruncate:
		dst = append(dst, "table "...)
		for i, t := range rec.Tables {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendTable(dst, t)
		}
		dst = append(dst, ": TRUNCATE:"...)
		if rec.Restart {
			dst = append(dst, " restart_seqs"...)
		}
		if rec.Cascade {
			dst = append(dst, " cascade"...)
		}
		if !rec.Restart && !rec.Cascade {
			dst = append(dst, " (no-flags)"...)
		}
	case KindMessage:
		dst = append(dst, "message: transactional: "...)
		if rec.Transactional {
			dst = append(dst, '1')
		} else {
			dst = append(dst, '0')
		}
		dst = append(dst, " prefix: "...)
		dst = append(dst, rec.Prefix...)
		dst = append(dst, ", sz: "...)
		dst = strconv.AppendInt(dst, int64(len(rec.Content)), 10)
		dst = append(dst, " content:"...)
		dst = append(dst, rec.Content...)
	}
	return dst
}

func appendTable(dst []byte, t Table) []byte {
	dst = append(dst, QuoteIdentifier(t.Schema)...)
	dst = append(dst, '.')
	return append(dst, QuoteIdentifier(t.Name)...)
}

func appendColumns(dst []byte, cols []Column) []byte {
	for _, c := range cols {
		dst = append(dst, ' ')
		dst = append(dst, QuoteIdentifier(c.Name)...)
		dst = append(dst, '[')
		dst = append(dst, c.Type...)
		dst = append(dst, "]:"...)
		switch {
		case c.Null:
			dst = append(dst, "null"...)
		case c.Unchanged:
			dst = append(dst, "unchanged-toast-datum"...)
		case c.Quoted:
			dst = append(dst, '\'')
			for i := 0; i < len(c.Value); i++ {
				if c.Value[i] == '\'' {
					dst = append(dst, '\'')
				}
				dst = append(dst, c.Value[i])
			}
			dst = append(dst, '\'')
		default:
			dst = append(dst, c.Value...)
		}
	}
	return dst
}

// appendTimestamptz appends t in timestamptz_to_str's ISO form at UTC offset
// +00, with trailing zeros of the microseconds dropped.
func appendTimestamptz(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year := t.Year()
	bc := year <= 0
	if bc {
		year = 1 - year
	}
	dst = appendPadded(dst, year, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, int(t.Month()), 2)
	dst = append(dst, '-')
	dst = appendPadded(dst, t.Day(), 2)
	dst = append(dst, ' ')
	dst = appendPadded(dst, t.Hour(), 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, t.Minute(), 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, t.Second(), 2)
	if us := t.Nanosecond() / 1000; us != 0 {
		dst = append(dst, '.')
		digits := 6
		for us%10 == 0 {
			us /= 10
			digits--
		}
		dst = appendPadded(dst, us, digits)
	}
	dst = append(dst, "+00"...)
	if bc {
		dst = append(dst, " BC"...)
	}
	return dst
}

func appendPadded(dst []byte, v, width int) []byte {
	var buf [20]byte
	b := strconv.AppendInt(buf[:0], int64(v), 10)
	for i := len(b); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, b...)
}
