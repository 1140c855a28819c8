package testdecoding

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// DefaultMaxRecordBytes is the largest record a Reader accepts unless told
// otherwise: a record may hold several values of up to 1 GB each in theory,
// but a record this large that has not ended almost always means a broken
// quote in the input.
const DefaultMaxRecordBytes = 256 << 20

// Reader splits pg_recvlogical output (pg_recvlogical -f -) into records and
// parses them. Records end at a newline, except that a newline inside a
// quoted literal, a quoted identifier or a message's content belongs to the
// record.
//
// When a record is broken (its quote never closes before the end of the input
// or within the maximum record size), the Reader returns a *ParseError for its
// first line and resumes with the line after it; a line longer than the
// maximum is skipped whole with a *ParseError. A record whose quotes balance but
// which does not parse is returned whole with its *ParseError, and the Reader
// resumes after it. Either way Next can be called again. Blank lines are
// skipped. A last record without a trailing newline is returned at a clean
// end of input, but not when the underlying reader failed.
type Reader struct {
	src        io.Reader
	buf        []byte
	start, end int // unread bytes are buf[start:end]
	eof        bool
	readErr    error
	line       int // line number of buf[start]
	lastLine   int
	max        int
	scratch    Record // Next parses into it
}

// NewReader returns a Reader reading from r.
func NewReader(r io.Reader) *Reader {
	return newReaderSize(r, 64<<10)
}

// newReaderSize is NewReader with an initial buffer of size bytes (tests use
// tiny ones to exercise refilling and growing).
func newReaderSize(r io.Reader, size int) *Reader {
	return &Reader{src: r, buf: make([]byte, max(size, 1)), line: 1, max: DefaultMaxRecordBytes}
}

// SetMaxRecordBytes sets the largest record, in bytes, the Reader accepts
// (see Reader); it bounds the Reader's memory. n <= 0 restores
// DefaultMaxRecordBytes.
func (r *Reader) SetMaxRecordBytes(n int) {
	if n <= 0 {
		n = DefaultMaxRecordBytes
	}
	r.max = n
}

// Line returns the 1-based line number where the last record returned by
// Next started.
func (r *Reader) Line() int { return r.lastLine }

// Next returns the next record and its raw text (without the trailing
// newline; valid until the next call). At the end of the input it returns
// io.EOF. A record that does not parse comes back with a *ParseError (whose
// Line is set) and its raw text; Next can then be called again. Other errors
// are the underlying reader's.
func (r *Reader) Next() (Record, []byte, error) {
	// Parse into a scratch record, then copy its slices out exactly sized:
	// one allocation each instead of append's doublings.
	raw, err := r.NextInto(&r.scratch)
	if raw == nil && err != nil {
		return Record{}, nil, err
	}
	rec := r.scratch
	rec.Columns = cloneSlice(rec.Columns)
	rec.OldKey = cloneSlice(rec.OldKey)
	rec.Tables = cloneSlice(rec.Tables)
	return rec, raw, err
}

// cloneSlice copies s into a new array, or returns nil when s is empty.
func cloneSlice[E any](s []E) []E {
	if len(s) == 0 {
		return nil
	}
	return append(make([]E, 0, len(s)), s...)
}

// NextInto is Next into rec, reusing rec's slices (see ParseInto).
func (r *Reader) NextInto(rec *Record) ([]byte, error) {
	// Fast path: almost every record is one line. A line that parses is a
	// record: every record the parser accepts has its quotes paired, so the
	// quote-tracking scan below would end it at the same newline.
	for r.start < r.end {
		b := r.buf[r.start:r.end]
		k := bytes.IndexByte(b, '\n')
		if k < 0 || k > r.max || hasPrefix(b, "message:") {
			break
		}
		if k == 0 {
			r.consume(0) // a blank line
			continue
		}
		if ParseInto(b[:k], rec) == nil {
			return r.consume(k), nil
		}
		break
	}
	raw, err := r.nextRaw()
	if err != nil {
		return nil, err
	}
	if err := ParseInto(raw, rec); err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.Line = r.lastLine
		}
		return raw, err
	}
	return raw, nil
}

// nextRaw returns the next record's text and consumes it and its newline.
func (r *Reader) nextRaw() ([]byte, error) {
	for {
		if r.start == r.end {
			if r.eof {
				if r.readErr != nil {
					return nil, r.readErr
				}
				return nil, io.EOF
			}
			if err := r.fill(); err != nil {
				return nil, err
			}
			continue
		}
		n, ok, err := r.extent()
		if err != nil {
			return nil, err
		}
		if !ok {
			n = r.firstLine()
			if n < 0 {
				return r.skipOversizedLine()
			}
		}
		if r.readErr != nil && r.start+n == r.end {
			// The input broke off inside this record: do not guess.
			return nil, r.readErr
		}
		if n == 0 {
			// pg_recvlogical prints no empty records: skip blank lines.
			r.consume(0)
			continue
		}
		return r.consume(n), nil
	}
}

// consume takes n bytes of record text and the newline after it (if any).
func (r *Reader) consume(n int) []byte {
	raw := r.buf[r.start : r.start+n]
	r.lastLine = r.line
	r.line += bytes.Count(raw, nl)
	r.start += n
	if r.start < r.end && r.buf[r.start] == '\n' {
		r.start++
		r.line++
	}
	return raw
}

var nl = []byte{'\n'}

// firstLine returns the length of the first line of the unread data
// (reading more as needed), or -1 when it is longer than the maximum record.
func (r *Reader) firstLine() int {
	from := 0
	for {
		b := r.buf[r.start:r.end]
		lim := min(len(b), r.max+1) // a newline at index max ends a record of max bytes
		if k := bytes.IndexByte(b[from:lim], '\n'); k >= 0 {
			return from + k
		}
		if len(b) > r.max {
			return -1
		}
		if r.eof {
			return len(b)
		}
		from = len(b)
		if r.fill() != nil {
			return -1
		}
	}
}

// skipOversizedLine drops a line longer than the maximum record and reports it.
func (r *Reader) skipOversizedLine() ([]byte, error) {
	r.lastLine = r.line
	for {
		if k := bytes.IndexByte(r.buf[r.start:r.end], '\n'); k >= 0 {
			r.start += k + 1
			r.line++
			break
		}
		r.start = r.end
		if r.eof {
			break
		}
		if err := r.fill(); err != nil {
			return nil, err
		}
	}
	return nil, &ParseError{Line: r.lastLine, Reason: "record longer than " + strconv.Itoa(r.max) + " bytes"}
}

// fill reads more input into buf, compacting or growing it first.
func (r *Reader) fill() error {
	if r.eof {
		return io.ErrUnexpectedEOF
	}
	if r.end == len(r.buf) {
		if r.start > 0 {
			copy(r.buf, r.buf[r.start:r.end])
			r.end -= r.start
			r.start = 0
		}
		if r.end == len(r.buf) {
			nb := make([]byte, 2*len(r.buf))
			copy(nb, r.buf[:r.end])
			r.buf = nb
		}
	}
	for tries := 0; tries < 100; tries++ {
		n, err := r.src.Read(r.buf[r.end:])
		r.end += n
		if err != nil {
			r.eof = true
			if err != io.EOF {
				r.readErr = fmt.Errorf("read test_decoding stream: %w", err)
			}
			return nil
		}
		if n > 0 {
			return nil
		}
	}
	r.eof = true
	r.readErr = fmt.Errorf("read test_decoding stream: %w", io.ErrNoProgress)
	return nil
}

// extent finds the end of the record at buf[start:], reading more as needed.
// It returns the record's length and true, or false when the record is
// broken (see Reader).
func (r *Reader) extent() (int, bool, error) {
	for !r.eof && r.end-r.start < len("message:") {
		if err := r.fill(); err != nil {
			return 0, false, err
		}
	}
	if hasPrefix(r.buf[r.start:r.end], "message:") {
		return r.messageExtent()
	}
	return r.quotedExtent()
}

// quotedExtent scans for the first newline outside single and double quotes.
func (r *Reader) quotedExtent() (int, bool, error) {
	var inQuote byte // 0, '\'' or '"'
	i := 0
	for {
		b := r.buf[r.start:r.end]
		// Look no further than a record of max bytes and its newline, so
		// that the outcome does not depend on how much is buffered.
		b = b[:min(len(b), r.max+1)]
		for i < len(b) {
			if inQuote != 0 {
				k := bytes.IndexByte(b[i:], inQuote)
				if k < 0 {
					i = len(b)
					break
				}
				i += k + 1
				inQuote = 0
				continue
			}
			c := b[i]
			switch c {
			case '\n':
				return i, true, nil
			case '\'', '"':
				inQuote = c
			}
			i++
		}
		if len(b) > r.max {
			return 0, false, nil
		}
		if r.eof {
			return len(b), inQuote == 0, nil
		}
		if err := r.fill(); err != nil {
			return 0, false, err
		}
	}
}

// messageExtent finds the end of a message record: the first
// ", sz: N content:" header whose N bytes of content are followed by a
// newline or the end of the input.
func (r *Reader) messageExtent() (int, bool, error) {
	const header = ", sz: "
	const lookahead = 64 // ", sz: " + up to 20 digits + " content:", and then some
	j := 0
	for {
		b := r.buf[r.start:r.end]
		// A header that starts at max or later cannot end a record of at
		// most max bytes; looking no further keeps the outcome independent
		// of how much is buffered.
		lim := min(len(b), r.max)
		k := -1
		if j < lim {
			k = bytes.Index(b[j:lim], []byte(header))
		}
		if k < 0 {
			if len(b) >= r.max || r.eof {
				return 0, false, nil
			}
			j = max(j, lim-len(header)+1) // a header may straddle what is buffered
			if err := r.fill(); err != nil {
				return 0, false, err
			}
			continue
		}
		at := j + k
		if len(b)-at < lookahead && !r.eof {
			if err := r.fill(); err != nil {
				return 0, false, err
			}
			continue
		}
		n, contentStart, ok := messageSize(string(b[at:min(len(b), at+lookahead)]), 0)
		end := at + contentStart + n
		if !ok || n > r.max || end > r.max {
			j = at + 1
			continue
		}
		for end >= r.end-r.start && !r.eof {
			if err := r.fill(); err != nil {
				return 0, false, err
			}
		}
		b = r.buf[r.start:r.end]
		if end == len(b) || end < len(b) && b[end] == '\n' {
			return end, true, nil
		}
		j = at + 1
	}
}
