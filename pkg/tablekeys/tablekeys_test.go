package tablekeys

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	got, err := Parse(" public.orders=id ; public.lines = order_id, line ;")
	if err != nil {
		t.Fatal(err)
	}
	want := Keys{
		{Schema: "public", Name: "orders"}: {"id"},
		{Schema: "public", Name: "lines"}:  {"order_id", "line"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse = %v, want %v", got, want)
	}
	if by := got.ByName(); !reflect.DeepEqual(by, map[string][]string{"public.orders": {"id"}, "public.lines": {"order_id", "line"}}) {
		t.Errorf("ByName = %v", by)
	}
	for _, bad := range []string{"orders=id", "public.orders", "public.orders=", "=id", ".x=id", "public.=id"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if k, err := Parse(""); err != nil || len(k) != 0 {
		t.Errorf("Parse(\"\") = %v, %v", k, err)
	}
}
