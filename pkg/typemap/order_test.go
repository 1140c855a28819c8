package typemap

import "testing"

func TestSortKey(t *testing.T) {
	for _, c := range []struct {
		declared, locale string
		same             bool
	}{
		{"bigint", "", true},
		{"numeric(10,2)", "", true},
		{"timestamp with time zone", "", true},
		{"uuid", "", true},
		{"bytea", "", true},
		{"text", "C", true},
		{"text", "C.UTF-8", true},
		{"character varying(20)", "POSIX", true},
		{"character(4)", "c.utf8", true},
		{"text", "en_US.UTF-8", false},
		{"character varying(20)", "icu", false},
		{"mood", "", false},                     // an enum: sorts by its declaration
		{"inet", "", false},                     // kept as text in the warehouse
		{"character varying(20)[]", "C", false}, // an array, kept as text
	} {
		expr, bound, same := SortKey(`"k"`, c.declared, c.locale)
		if same != c.same {
			t.Errorf("SortKey(%s, %q): same %v, want %v", c.declared, c.locale, same, c.same)
		}
		wantExpr, wantBound := `"k"`, c.declared
		if !c.same {
			wantExpr, wantBound = `"k"::text COLLATE "C"`, "text"
		}
		if expr != wantExpr || bound != wantBound {
			t.Errorf("SortKey(%s, %q) = %s, %s; want %s, %s", c.declared, c.locale, expr, bound, wantExpr, wantBound)
		}
	}
}
