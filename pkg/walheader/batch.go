package walheader

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header names of a batch: a message holding several changes of one table
// (docs/DESIGN.md §3). Its body is the records' test_decoding text joined by
// single newlines ('\n'), each exactly as Postgres printed it.
const (
	// Lens lists the byte length of every record of the body, in order,
	// comma-separated decimal. Absent on a message of one change.
	Lens = "Redms-Lens"
	// Txns describes the records' transactions in order as ';'-separated
	// runs (see Run.String); the runs' counts add up to the records.
	// Absent on a message of one change.
	Txns = "Redms-Txns"
	// LSNDeltas gives every record's change LSN after the first (which is
	// LSN): each minus the previous record's, comma-separated signed
	// decimal (EncodeLSNDeltas). Absent on a message of one change.
	LSNDeltas = "Redms-Lsn-Deltas"
)

// Run is a run of consecutive records of a batch from one transaction:
// positions {Base, First}, {Base, First+1}, … {Base, First+Count-1}.
// CommitLSN and CommitTime are empty/zero while the transaction has not
// committed (a transaction larger than the capture's buffer); Xid is 0 when
// unknown.
type Run struct {
	Base       uint64
	First      uint64
	Count      int
	Xid        uint64
	CommitLSN  string
	CommitTime time.Time
}

// String renders r as "<base hex>.<first>.<count>.<xid>.<commit LSN>.<commit
// unix nanoseconds>" with empty fields for what is unknown, e.g.
// "16B3748.0.3.731.0/16B3900.1764558000000000000" or "16B3748.5.2.731..".
func (r Run) String() string {
	var b strings.Builder
	b.WriteString(strings.ToUpper(strconv.FormatUint(r.Base, 16)))
	b.WriteByte('.')
	b.WriteString(strconv.FormatUint(r.First, 10))
	b.WriteByte('.')
	b.WriteString(strconv.Itoa(r.Count))
	b.WriteByte('.')
	if r.Xid != 0 {
		b.WriteString(strconv.FormatUint(r.Xid, 10))
	}
	b.WriteByte('.')
	b.WriteString(r.CommitLSN)
	b.WriteByte('.')
	if !r.CommitTime.IsZero() {
		b.WriteString(strconv.FormatInt(r.CommitTime.UnixNano(), 10))
	}
	return b.String()
}

// ParseRun parses what Run.String renders.
func ParseRun(s string) (Run, error) {
	f := strings.Split(s, ".")
	if len(f) != 6 {
		return Run{}, fmt.Errorf("parse run %q: want 6 dot-separated fields", s)
	}
	var r Run
	var err error
	if r.Base, err = strconv.ParseUint(f[0], 16, 64); err != nil {
		return Run{}, fmt.Errorf("parse run %q: base: %w", s, err)
	}
	if r.First, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return Run{}, fmt.Errorf("parse run %q: first index: %w", s, err)
	}
	if r.Count, err = strconv.Atoi(f[2]); err != nil || r.Count < 1 {
		return Run{}, fmt.Errorf("parse run %q: count must be a positive integer", s)
	}
	if f[3] != "" {
		if r.Xid, err = strconv.ParseUint(f[3], 10, 64); err != nil {
			return Run{}, fmt.Errorf("parse run %q: xid: %w", s, err)
		}
	}
	r.CommitLSN = f[4]
	if f[5] != "" {
		ns, err := strconv.ParseInt(f[5], 10, 64)
		if err != nil {
			return Run{}, fmt.Errorf("parse run %q: commit time: %w", s, err)
		}
		r.CommitTime = time.Unix(0, ns).UTC()
	}
	return r, nil
}

// EncodeRuns renders runs as the Txns header value.
func EncodeRuns(runs []Run) string {
	parts := make([]string, len(runs))
	for i, r := range runs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ";")
}

// DecodeRuns parses the Txns header value.
func DecodeRuns(s string) ([]Run, error) {
	var runs []Run
	for _, p := range strings.Split(s, ";") {
		r, err := ParseRun(p)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", Txns, err)
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// EncodeLens renders record lengths as the Lens header value.
func EncodeLens(lens []int) string {
	b := make([]byte, 0, 4*len(lens))
	for i, n := range lens {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return string(b)
}

// DecodeLens parses the Lens header value.
func DecodeLens(s string) ([]int, error) {
	fields := strings.Split(s, ",")
	lens := make([]int, len(fields))
	for i, f := range fields {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("decode %s: length %q is not a non-negative integer", Lens, f)
		}
		lens[i] = n
	}
	return lens, nil
}

// EncodeLSNDeltas renders the change LSNs of a batch's records (lsns[0]
// is the LSN header's) as the LSNDeltas header value.
func EncodeLSNDeltas(lsns []uint64) string {
	b := make([]byte, 0, 5*len(lsns))
	for i := 1; i < len(lsns); i++ {
		if i > 1 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(lsns[i]-lsns[i-1]), 10)
	}
	return string(b)
}

// DecodeLSNDeltas parses the LSNDeltas header value of a batch whose first
// record is at first into every record's LSN.
func DecodeLSNDeltas(first uint64, s string) ([]uint64, error) {
	fields := strings.Split(s, ",")
	lsns := make([]uint64, 1, len(fields)+1)
	lsns[0] = first
	for _, f := range fields {
		d, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %q is not a signed integer", LSNDeltas, f)
		}
		lsns = append(lsns, lsns[len(lsns)-1]+uint64(d))
	}
	return lsns, nil
}

// SplitBody cuts a batch body into its records by their lengths: record i
// is lens[i] bytes, records separated by one '\n'. The records share body.
func SplitBody(body []byte, lens []int) ([][]byte, error) {
	recs := make([][]byte, len(lens))
	off := 0
	for i, n := range lens {
		if i > 0 {
			if off >= len(body) || body[off] != '\n' {
				return nil, fmt.Errorf("split batch body: record %d does not start after a newline at byte %d", i, off)
			}
			off++
		}
		if off+n > len(body) {
			return nil, fmt.Errorf("split batch body: record %d (%d bytes at %d) passes the body's end (%d bytes)", i, n, off, len(body))
		}
		recs[i] = body[off : off+n : off+n]
		off += n
	}
	if off != len(body) {
		return nil, fmt.Errorf("split batch body: %d bytes after the last record", len(body)-off)
	}
	return recs, nil
}

// JoinBody is the body of a batch of records (the inverse of SplitBody),
// appended to dst.
func JoinBody(dst []byte, recs [][]byte) []byte {
	return append(dst, bytes.Join(recs, []byte{'\n'})...)
}

// Positions lists the position of every record of a batch described by
// runs, in order.
func Positions(runs []Run) []Pos {
	var out []Pos
	for _, r := range runs {
		for i := range r.Count {
			out = append(out, Pos{Base: r.Base, Index: r.First + uint64(i)})
		}
	}
	return out
}
