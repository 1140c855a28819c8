package change

import (
	"context"
	"strconv"
	"testing"

	"github.com/jackc/pglogrepl"

	"github.com/redms/redms/pkg/testdecoding"
)

// BenchmarkRecord is the per-change cost of turning a record into its
// message: transactions of 100 inserts over three tables.
func BenchmarkRecord(b *testing.B) {
	a := newAssembler(newResolver(), AssemblerConfig{MaxTxnChanges: 10000}, TablesConfig{})
	a.Start(1)
	type item struct {
		rec testdecoding.Record
		raw []byte
	}
	var items []item
	add := func(l string) {
		rec, err := testdecoding.Parse([]byte(l))
		if err != nil {
			b.Fatal(err)
		}
		items = append(items, item{rec, []byte(l)})
	}
	add("BEGIN 7")
	for i := range 100 {
		add("table public.t" + strconv.Itoa(i%3) + ": INSERT: id[integer]:" + strconv.Itoa(i) + " v[text]:'some text of a row, about two hundred bytes long when padded out ....................................................................................'")
	}
	add("COMMIT 7 (at 2024-01-02 03:04:05.123456+00)")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	lsn := pglogrepl.LSN(1000)
	for n := 0; n < b.N; {
		for i := range items {
			lsn++
			if _, _, err := a.Record(ctx, &items[i].rec, items[i].raw, lsn); err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
}
