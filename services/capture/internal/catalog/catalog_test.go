package catalog

import (
	"reflect"
	"testing"
)

func TestParseTableKeys(t *testing.T) {
	got, err := ParseTableKeys("public.orders=id; public.lines = order_id, line ;")
	if err != nil {
		t.Fatal(err)
	}
	want := TableKeys{
		{Schema: "public", Table: "orders"}: {"id"},
		{Schema: "public", Table: "lines"}:  {"order_id", "line"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"orders=id", "public.orders", "public.orders=", ".x=id"} {
		if _, err := ParseTableKeys(bad); err == nil {
			t.Errorf("ParseTableKeys(%q): no error", bad)
		}
	}
	if tk, err := ParseTableKeys(""); err != nil || len(tk) != 0 {
		t.Errorf("empty: %v, %v", tk, err)
	}
}
