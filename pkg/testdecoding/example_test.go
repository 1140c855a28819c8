package testdecoding_test

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/redms/redms/pkg/testdecoding"
)

func ExampleReader() {
	input := "BEGIN 529\n" +
		"table public.orders: INSERT: id[integer]:1 note[text]:'two\nlines' amount[numeric]:9.50\n" +
		"table public.orders: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 note[text]:unchanged-toast-datum amount[numeric]:null\n" +
		"table public.orders: INSERT: id[integer]:3 note[text]:'never closed\n" +
		"COMMIT 529 (at 2024-01-02 03:04:05.123456+00)\n"
	r := testdecoding.NewReader(strings.NewReader(input))
	for {
		rec, _, err := r.Next()
		if err == io.EOF {
			break
		}
		var pe *testdecoding.ParseError
		if errors.As(err, &pe) {
			fmt.Printf("line %d: bad record in %s at byte %d: %s\n", r.Line(), pe.Table, pe.Offset, pe.Reason)
			continue
		}
		switch rec.Kind {
		case testdecoding.KindBegin, testdecoding.KindCommit:
			fmt.Printf("line %d: %s %d %s\n", r.Line(), rec.Kind, rec.XID, rec.CommitTime.Format("15:04:05.000000"))
		default:
			fmt.Printf("line %d: %s %s old-key:%s new:%s\n", r.Line(), rec.Kind, rec.Table, show(rec.OldKey), show(rec.Columns))
		}
	}
	// Output:
	// line 1: BEGIN 529 00:00:00.000000
	// line 2: INSERT public.orders old-key: new: id=1 note="two\nlines" amount=9.50
	// line 4: UPDATE public.orders old-key: id=1 new: id=2 note=(unchanged) amount=NULL
	// line 5: bad record in public.orders at byte 54: unterminated quoted literal
	// line 6: COMMIT 529 03:04:05.123456
}

func show(cols []testdecoding.Column) string {
	var b strings.Builder
	for _, c := range cols {
		switch {
		case c.Null:
			fmt.Fprintf(&b, " %s=NULL", c.Name)
		case c.Unchanged:
			fmt.Fprintf(&b, " %s=(unchanged)", c.Name)
		case c.Quoted:
			fmt.Fprintf(&b, " %s=%q", c.Name, c.Value)
		default:
			fmt.Fprintf(&b, " %s=%s", c.Name, c.Value)
		}
	}
	return b.String()
}

func ExampleRender() {
	rec := testdecoding.Record{
		Kind:  testdecoding.KindInsert,
		Table: testdecoding.Table{Schema: "Sales", Name: "order lines"},
		Columns: []testdecoding.Column{
			{Name: "id", Type: "integer", Value: "7"},
			{Name: "note", Type: "text", Value: "it's", Quoted: true},
		},
	}
	fmt.Println(string(testdecoding.Render(rec)))
	// Output: table "Sales"."order lines": INSERT: id[integer]:7 note[text]:'it''s'
}
