package selection

import "testing"

func TestFilter(t *testing.T) {
	cases := []struct {
		include, exclude string
		schema, table    string
		want             bool
	}{
		{"", "", "public", "orders", true},
		{"public.*", "", "public", "orders", true},
		{"public.*", "", "audit", "orders", false},
		{"public.ord*", "", "public", "orders", true},
		{"public.ord*", "", "public", "lines", false},
		{"*.orders", "", "sales", "orders", true},
		{"orders", "", "sales", "orders", true},
		{"", "public.tmp_*", "public", "tmp_x", false},
		{"", "public.tmp_*", "public", "orders", true},
		{"public.*", "public.secret", "public", "secret", false},
		{"public.*,audit.log", "", "audit", "log", true},
		{"", "*", "public", "orders", false},
		{"public.a*b*c", "", "public", "aXbYc", true},
		{"public.a*b*c", "", "public", "aXbYcd", false},
		{"public.*_log", "", "public", "x_log_log", true},
		{"my.schema.t", "", "my", "schema.t", true},
	}
	for _, c := range cases {
		f, err := NewFilter(c.include, c.exclude)
		if err != nil {
			t.Fatalf("NewFilter(%q, %q): %v", c.include, c.exclude, err)
		}
		if got := f.Selected(c.schema, c.table); got != c.want {
			t.Errorf("include %q exclude %q: Selected(%s.%s) = %v, want %v", c.include, c.exclude, c.schema, c.table, got, c.want)
		}
	}
}

func TestParsePatternErrors(t *testing.T) {
	for _, s := range []string{".x", "x.", " . "} {
		if _, err := ParsePattern(s); err == nil {
			t.Errorf("ParsePattern(%q): no error", s)
		}
	}
	if ps, err := ParsePatterns(" , ,"); err != nil || len(ps) != 0 {
		t.Errorf("ParsePatterns of blanks = %v, %v", ps, err)
	}
}

func TestSuffix(t *testing.T) {
	s, err := NewSuffix(`_\d{4}_\d{2}$`)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"orders_2024_01", "orders", true},
		{"orders", "orders", false},
		{"_2024_01", "_2024_01", false},
		{"orders_2024_01_x", "orders_2024_01_x", false},
	}
	for _, c := range cases {
		got, ok := s.Root(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("Root(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	none, _ := NewSuffix("")
	if got, ok := none.Root("orders_2024_01"); ok || got != "orders_2024_01" {
		t.Errorf("empty suffix stripped: %q", got)
	}
	if _, err := NewSuffix("("); err == nil {
		t.Error("bad regexp accepted")
	}
}
