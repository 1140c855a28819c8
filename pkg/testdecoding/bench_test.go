package testdecoding

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

var (
	benchOnce sync.Once
	benchBuf  []byte
	benchRecs int
)

// benchInput is ~8 MB of pg_recvlogical output: transactions of 1-20 changes
// to a table of ~200-byte rows, some literals with quotes and newlines, some
// nulls, now and then a TOASTed column left unchanged. Built once.
func benchInput() ([]byte, int) {
	benchOnce.Do(func() {
		rnd := rand.New(rand.NewPCG(1, 2))
		statuses := []string{"new", "paid", "shipped", "cancelled"}
		var b bytes.Buffer
		xid := uint32(1000)
		ts := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
		for b.Len() < 8<<20 {
			xid++
			fmt.Fprintf(&b, "BEGIN %d\n", xid)
			benchRecs++
			for n := 1 + rnd.IntN(20); n > 0; n-- {
				id := rnd.IntN(1_000_000)
				note := fmt.Sprintf("'customer note %d'", rnd.IntN(1e6))
				switch rnd.IntN(10) {
				case 0:
					note = "null"
				case 1:
					note = "'it''s a \"quoted\"\nmulti-line note'"
				}
				created := ts.Add(time.Duration(rnd.IntN(1e9)) * time.Millisecond).Format("2006-01-02 15:04:05.000000")
				switch k := rnd.IntN(10); {
				case k < 6:
					fmt.Fprintf(&b, "table public.orders: INSERT: id[integer]:%d customer_id[bigint]:%d amount[numeric]:%d.%02d status[character varying]:'%s' created_at[timestamp with time zone]:'%s+00' paid[boolean]:%t note[text]:%s\n",
						id, rnd.Int64N(1e12), rnd.IntN(100000), rnd.IntN(100), statuses[rnd.IntN(4)], created, rnd.IntN(2) == 0, note)
				case k < 9:
					doc := "'short doc'"
					if rnd.IntN(4) == 0 {
						doc = "unchanged-toast-datum"
					}
					fmt.Fprintf(&b, "table public.orders: UPDATE: id[integer]:%d customer_id[bigint]:%d amount[numeric]:%d.%02d status[character varying]:'%s' created_at[timestamp with time zone]:'%s+00' paid[boolean]:%t note[text]:%s doc[text]:%s\n",
						id, rnd.Int64N(1e12), rnd.IntN(100000), rnd.IntN(100), statuses[rnd.IntN(4)], created, rnd.IntN(2) == 0, note, doc)
				default:
					fmt.Fprintf(&b, "table public.orders: DELETE: id[integer]:%d\n", id)
				}
				benchRecs++
			}
			fmt.Fprintf(&b, "COMMIT %d (at %s+00)\n", xid, ts.Format("2006-01-02 15:04:05.000000"))
			benchRecs++
		}
		benchBuf = b.Bytes()
	})
	return benchBuf, benchRecs
}

// splitLines is the baseline: bufio.Scanner splitting the same buffer into
// lines, the least any reader of this text must do.
func splitLines(buf []byte) int {
	sc := bufio.NewScanner(bytes.NewReader(buf))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
	}
	return n
}

// readAllInto parses every record of buf with one reused Record.
func readAllInto(b *testing.B, buf []byte) int {
	r := NewReader(bytes.NewReader(buf))
	var rec Record
	n := 0
	for {
		_, err := r.NextInto(&rec)
		if err == io.EOF {
			return n
		}
		if err != nil {
			b.Fatal(err)
		}
		n++
	}
}

// BenchmarkParse measures Reader throughput against a bufio.Scanner line
// split of the same buffer. The reader sub-benchmarks report
// parse/split-ratio: parse MB/s divided by split MB/s, both measured in the
// same run (target >= 0.3).
func BenchmarkParse(b *testing.B) {
	buf, recs := benchInput()
	b.Run("split", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			splitLines(buf)
		}
	})
	ratio := func(b *testing.B, parse func()) {
		b.SetBytes(int64(len(buf)))
		var split time.Duration
		for b.Loop() {
			b.StopTimer()
			t0 := time.Now()
			splitLines(buf)
			split += time.Since(t0)
			b.StartTimer()
			parse()
		}
		b.ReportMetric(float64(split)/float64(b.Elapsed()), "parse/split-ratio")
	}
	b.Run("reader-into", func(b *testing.B) {
		ratio(b, func() {
			if n := readAllInto(b, buf); n != recs {
				b.Fatalf("parsed %d records, want %d", n, recs)
			}
		})
	})
	b.Run("reader-next", func(b *testing.B) {
		ratio(b, func() {
			r := NewReader(bytes.NewReader(buf))
			for {
				_, _, err := r.Next()
				if err == io.EOF {
					return
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkParseInto parses one typical ~200-byte INSERT record.
func BenchmarkParseInto(b *testing.B) {
	text := []byte("table public.orders: INSERT: id[integer]:123456 customer_id[bigint]:987654321012 amount[numeric]:1234.56 status[character varying]:'paid' created_at[timestamp with time zone]:'2024-01-02 03:04:05.123456+00' paid[boolean]:true note[text]:'customer note 42'")
	b.SetBytes(int64(len(text)))
	var rec Record
	for b.Loop() {
		if err := ParseInto(text, &rec); err != nil {
			b.Fatal(err)
		}
	}
}
