package testdecoding

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type readResult struct {
	raw  string
	line int
	kind Kind
	err  string // substring of the error, "" for none
}

func readAll(t *testing.T, r *Reader) []readResult {
	t.Helper()
	var out []readResult
	for i := 0; i < 10000; i++ {
		rec, raw, err := r.Next()
		if err == io.EOF {
			return out
		}
		res := readResult{raw: string(raw), line: r.Line(), kind: rec.Kind}
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				res.err = "other: " + err.Error()
				out = append(out, res)
				return out
			}
			if pe.Line != r.Line() {
				t.Errorf("ParseError.Line = %d, Reader.Line() = %d", pe.Line, r.Line())
			}
			res.err = pe.Error()
			res.kind = 0
		}
		out = append(out, res)
	}
	t.Fatal("reader does not end")
	return nil
}

func TestReader(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []readResult
	}{
		{"empty", "", nil},
		{"simple", "BEGIN 1\ntable public.t: INSERT: a[integer]:1\nCOMMIT 1\n", []readResult{
			{raw: "BEGIN 1", line: 1, kind: KindBegin},
			{raw: "table public.t: INSERT: a[integer]:1", line: 2, kind: KindInsert},
			{raw: "COMMIT 1", line: 3, kind: KindCommit},
		}},
		{"no trailing newline", "BEGIN\nCOMMIT", []readResult{
			{raw: "BEGIN", line: 1, kind: KindBegin},
			{raw: "COMMIT", line: 2, kind: KindCommit},
		}},
		{"blank lines skipped", "\nBEGIN\n\n\nCOMMIT\n\n", []readResult{
			{raw: "BEGIN", line: 2, kind: KindBegin},
			{raw: "COMMIT", line: 5, kind: KindCommit},
		}},
		{"newline in literal", "table public.t: INSERT: a[text]:'x\ny''\n' b[integer]:1\nCOMMIT\n", []readResult{
			{raw: "table public.t: INSERT: a[text]:'x\ny''\n' b[integer]:1", line: 1, kind: KindInsert},
			{raw: "COMMIT", line: 4, kind: KindCommit},
		}},
		{"newline in identifier", "table public.\"a\nb\": INSERT: \"c'\nd\"[text]:'x'\nCOMMIT\n", []readResult{
			{raw: "table public.\"a\nb\": INSERT: \"c'\nd\"[text]:'x'", line: 1, kind: KindInsert},
			{raw: "COMMIT", line: 4, kind: KindCommit},
		}},
		{"message with newlines", "message: transactional: 1 prefix: p, sz: 7 content:a\nb\n'\"c\nCOMMIT\n", []readResult{
			{raw: "message: transactional: 1 prefix: p, sz: 7 content:a\nb\n'\"c", line: 1, kind: KindMessage},
			{raw: "COMMIT", line: 4, kind: KindCommit},
		}},
		{"message at eof", "message: transactional: 0 prefix: p, sz: 2 content:a\n", []readResult{
			{raw: "message: transactional: 0 prefix: p, sz: 2 content:a\n", line: 1, kind: KindMessage},
		}},
		{"message sz lies", "message: transactional: 0 prefix: p, sz: 5 content:ab\nBEGIN\n", []readResult{
			{raw: "message: transactional: 0 prefix: p, sz: 5 content:ab", line: 1, err: "line 1: offset 35: message content length does not match sz"},
			{raw: "BEGIN", line: 2, kind: KindBegin},
		}},
		{"bad record then good", "table public.t: INSERT: a[integer]\nBEGIN 2\n", []readResult{
			{raw: "table public.t: INSERT: a[integer]", line: 1, err: "line 1: table public.t: offset 26: unterminated column type"},
			{raw: "BEGIN 2", line: 2, kind: KindBegin},
		}},
		{"unterminated quote resyncs", "BEGIN\ntable public.t: INSERT: a[text]:'abc\ntable public.t: INSERT: a[integer]:2\nCOMMIT\n", []readResult{
			{raw: "BEGIN", line: 1, kind: KindBegin},
			{raw: "table public.t: INSERT: a[text]:'abc", line: 2, err: "line 2: table public.t: offset 32: unterminated quoted literal"},
			{raw: "table public.t: INSERT: a[integer]:2", line: 3, kind: KindInsert},
			{raw: "COMMIT", line: 4, kind: KindCommit},
		}},
		{"garbage line", "hello world\nBEGIN\n", []readResult{
			{raw: "hello world", line: 1, err: "line 1: offset 0: unknown record"},
			{raw: "BEGIN", line: 2, kind: KindBegin},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []string{"whole", "onebyte"} {
				var src io.Reader = strings.NewReader(tt.input)
				if mode == "onebyte" {
					src = iotest.OneByteReader(src)
				}
				r := NewReader(src)
				got := readAll(t, r)
				if len(got) != len(tt.want) {
					t.Fatalf("%s: got %d records %+v, want %d %+v", mode, len(got), got, len(tt.want), tt.want)
				}
				for i := range got {
					g, w := got[i], tt.want[i]
					if g.raw != w.raw || g.line != w.line || g.kind != w.kind || (w.err == "") != (g.err == "") || !strings.Contains(g.err, w.err) {
						t.Errorf("%s: record %d = %+v, want %+v", mode, i, g, w)
					}
				}
			}
		})
	}
}

func TestReaderMaxRecordBytes(t *testing.T) {
	// An unfinished quote is given up at the maximum: its first line is the
	// broken record, and reading goes on after it.
	input := "table public.t: INSERT: a[text]:'" + strings.Repeat("x", 20) + "\n" + strings.Repeat("y", 300) + "\nBEGIN\n"
	r := NewReader(strings.NewReader(input))
	r.SetMaxRecordBytes(100)
	got := readAll(t, r)
	if len(got) != 3 || !strings.Contains(got[0].err, "line 1: table public.t: offset 32: unterminated quoted literal") ||
		!strings.Contains(got[1].err, "line 2: offset 0: record longer than 100 bytes") ||
		got[2].kind != KindBegin || got[2].line != 3 {
		t.Fatalf("got %+v", got)
	}

	// A line longer than the maximum is skipped whole, however much of it
	// is buffered, even when it would parse.
	for _, size := range []int{1, 64 << 10} {
		huge := "table public.t: INSERT: a[text]:'" + strings.Repeat("x", 300) + "'\nBEGIN\n"
		r = newReaderSize(strings.NewReader(huge), size)
		r.SetMaxRecordBytes(200)
		got = readAll(t, r)
		if len(got) != 2 || !strings.Contains(got[0].err, "line 1: offset 0: record longer than 200 bytes") ||
			got[1].kind != KindBegin || got[1].line != 2 {
			t.Fatalf("buffer %d: got %+v", size, got)
		}
	}
	// A record of exactly the maximum is fine.
	exact := "table public.t: INSERT: a[text]:'" + strings.Repeat("x", 200-34) + "'"
	r = NewReader(strings.NewReader(exact + "\n"))
	r.SetMaxRecordBytes(len(exact))
	if _, raw, err := r.Next(); err != nil || string(raw) != exact {
		t.Fatalf("record of max bytes: %v", err)
	}
}

func TestReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(strings.NewReader("BEGIN 1\ntable public.t: INSERT: a[integer]:12"), iotest.ErrReader(boom)))
	if rec, _, err := r.Next(); err != nil || rec.Kind != KindBegin {
		t.Fatalf("first record: %+v %v", rec, err)
	}
	// The cut-off INSERT must not be parsed as a:12.
	if rec, raw, err := r.Next(); !errors.Is(err, boom) {
		t.Fatalf("second record: %+v %q %v, want the read error", rec, raw, err)
	}
}

func TestReaderLargeRecordGrowsBuffer(t *testing.T) {
	val := strings.Repeat("0123456789abcdef\n", 20000) // 340 kB with newlines
	input := "table public.t: INSERT: a[text]:'" + val + "'\nCOMMIT\n"
	r := NewReader(strings.NewReader(input))
	rec, _, err := r.Next()
	if err != nil || rec.Columns[0].Value != val {
		t.Fatalf("big record: err %v", err)
	}
	rec, _, err = r.Next()
	if err != nil || rec.Kind != KindCommit || r.Line() != 20002 {
		t.Fatalf("after big record: %+v %v line %d", rec, err, r.Line())
	}
}
