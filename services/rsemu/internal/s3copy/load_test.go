package s3copy

import (
	"strconv"
	"testing"

	"github.com/redms/redms/services/rsemu/internal/translate"
)

func copyStmt() *translate.CopyStmt {
	return &translate.CopyStmt{Delimiter: ",", Quote: `"`, Null: `\N`}
}

func TestParseCSV(t *testing.T) {
	cols := []Column{{Name: "id", Type: translate.Type{Class: translate.Integer}}, {Name: "v", Type: translate.Type{Class: translate.Varchar, Length: 20}}}
	var b Batch
	Parse(copyStmt(), cols, File{URL: "s3://b/k", Data: []byte("1,a\r\n2,\"x,\"\"y\"\"\nz\"\n3,\n4,\\N\n5,\"\\N\"\n6,\"\"")}, &b)
	want := "\"1\",\"a\"\n\"2\",\"x,\"\"y\"\"\nz\"\n\"3\",\"\"\n\"4\",\n\"5\",\"\\N\"\n\"6\",\"\"\n"
	if got := b.CSV.String(); got != want || b.Rows != 6 || len(b.Errors) != 0 {
		t.Fatalf("got %q rows %d errors %v\nwant %q", got, b.Rows, b.Errors, want)
	}
}

func TestParseLineNumbers(t *testing.T) {
	cols := []Column{{Name: "id", Type: translate.Type{Class: translate.Integer}}, {Name: "v", Type: translate.Type{Class: translate.Varchar, Length: 20}}}
	var b Batch
	Parse(copyStmt(), cols, File{URL: "s3://b/k", Data: []byte("1,\"multi\nline\"\nx,a\n3,\"unterminated")}, &b)
	if b.Rows != 1 || len(b.Errors) != 2 {
		t.Fatalf("rows %d errors %+v", b.Rows, b.Errors)
	}
	if e := b.Errors[0]; e.Line != 3 || e.Code != ErrDigit || e.Column != "id" || e.RawLine != "x,a" || e.RawValue != "x" {
		t.Fatalf("first error %+v", e)
	}
	if e := b.Errors[1]; e.Line != 4 || e.Code != ErrInvalidLine {
		t.Fatalf("second error %+v", e)
	}
}

func TestConvert(t *testing.T) {
	typ := func(c translate.TypeClass) Column { return Column{Name: "c", Type: translate.Type{Class: c}} }
	vc := Column{Name: "c", Type: translate.Type{Class: translate.Varchar, Length: 3}}
	ch := Column{Name: "c", Type: translate.Type{Class: translate.Char, Length: 2}}
	num := Column{Name: "c", Type: translate.Type{Class: translate.Numeric, Precision: 5, Scale: 2}}
	n19 := Column{Name: "c", Type: translate.Type{Class: translate.Numeric, Precision: 19, Scale: 8}}
	cases := []struct {
		col    Column
		in     string
		quoted bool
		want   string // value, NULL, or #code
	}{
		{vc, "abc", false, "abc"},
		{vc, "é", false, "é"},
		{vc, "éé", false, "#1204"},
		{vc, "", false, ""},
		{vc, "", true, ""},
		{vc, `\N`, false, "NULL"},
		{vc, `\N`, true, `\N`},
		{vc, "a\xffb", false, "#1220"},
		{ch, "ab", false, "ab"},
		{ch, "é", false, "#1220"},
		{ch, "abc", false, "#1204"},
		{typ(translate.Integer), "", false, "NULL"},
		{typ(translate.Integer), " 42 ", false, "42"},
		{typ(translate.Integer), "4x", false, "#1207"},
		{typ(translate.Integer), "2147483648", false, "#1204"},
		{typ(translate.SmallInt), "32768", false, "#1204"},
		{typ(translate.BigInt), "9223372036854775807", false, "9223372036854775807"},
		{num, "999.99", false, "999.99"},
		{num, "999.994", false, "999.99"},
		{num, "999.996", false, "999.99"}, // excess scale is truncated (no ROUNDEC)
		{num, "-999.999", false, "-999.99"},
		{num, "1000.001", false, "#1204"},
		{num, "-1.5", false, "-1.50"},
		{n19, "92233720368.54775807", false, "92233720368.54775807"},
		{n19, "92233720368.54775808", false, "#1204"},
		{n19, "-92233720368.54775808", false, "-92233720368.54775808"},
		{n19, "99999999999", false, "#1204"},
		{num, "1e3", false, "#1207"},
		{num, "abc", false, "#1207"},
		{typ(translate.Double), "1.5e300", false, "1.5e300"},
		{typ(translate.Double), "NaN", false, "NaN"},
		{typ(translate.Double), "1,5", false, "#1208"},
		{typ(translate.Real), "1e39", false, "#1204"},
		{typ(translate.Boolean), "Yes", false, "t"},
		{typ(translate.Boolean), "0", false, "f"},
		{typ(translate.Boolean), "maybe", false, "#1210"},
		{typ(translate.Date), "2024-02-29", false, "2024-02-29"},
		{typ(translate.Date), "2023-02-29", false, "#1205"},
		{typ(translate.Date), "294276-12-31", false, "294276-12-31"},
		{typ(translate.Date), "294277-01-01", false, "#1205"},
		{typ(translate.Date), "4713-01-01 BC", false, "4713-01-01 BC"},
		{typ(translate.Date), "4714-01-01 BC", false, "#1205"},
		{typ(translate.Date), "infinity", false, "#1205"},
		{typ(translate.Timestamp), "2024-01-02 03:04:05.123456", false, "2024-01-02 03:04:05.123456"},
		{typ(translate.Timestamp), "2024-01-02T03:04:05Z", false, "2024-01-02T03:04:05Z"},
		{typ(translate.TimestampTZ), "2024-01-02 03:04:05+02", false, "2024-01-02 03:04:05+02"},
		{typ(translate.Timestamp), "2024-01-02 24:00:00", false, "#1206"},
		{typ(translate.Timestamp), "-infinity", false, "#1206"},
		{Column{Name: "c", Type: translate.Type{Class: translate.Integer}, NotNull: true}, `\N`, false, "NULL"},
	}
	for _, c := range cases {
		v, code, reason := convert(copyStmt(), &c.col, field{val: c.in, quoted: c.quoted})
		got := "NULL"
		switch {
		case code != 0:
			got = "#" + strconv.Itoa(code)
			if reason == "" {
				t.Fatalf("%v %q: code %d without reason", c.col.Type, c.in, code)
			}
		case v != nil:
			got = *v
		}
		if got != c.want {
			t.Fatalf("%v %q (quoted %v): got %q, want %q (%s)", c.col.Type, c.in, c.quoted, got, c.want, reason)
		}
	}
}

func TestConvertOptions(t *testing.T) {
	vc := Column{Name: "c", Type: translate.Type{Class: translate.Varchar, Length: 3}}
	c := copyStmt()
	c.EmptyAsNull, c.BlanksAsNull, c.TruncateColumns, c.AcceptInvChars = true, true, true, "^"
	for in, want := range map[string]string{"": "NULL", "   ": "NULL", "abcdef": "abc", "aéé": "aé", "a\xffb": "a^b"} {
		v, code, _ := convert(c, &vc, field{val: in})
		got := "NULL"
		if v != nil {
			got = *v
		}
		if code != 0 || got != want {
			t.Fatalf("%q: got %q code %d, want %q", in, got, code, want)
		}
	}
}

// FuzzParse: any file parses without panicking, and every record is either
// loaded or counted bad.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"1,a\n2,\"b\"\"c\"\n", "\"unterminated", "1,\"x\ny\"\r\n", ",,,\n\n", "\xff,\\N\n"} {
		f.Add([]byte(s))
	}
	cols := []Column{{Name: "id", Type: translate.Type{Class: translate.Integer}}, {Name: "v", Type: translate.Type{Class: translate.Varchar, Length: 5}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Batch
		Parse(copyStmt(), cols, File{URL: "s3://b/k", Data: data}, &b)
		if b.Rows < 0 || b.Bad < len(b.Errors) {
			t.Fatalf("rows %d bad %d errors %d", b.Rows, b.Bad, len(b.Errors))
		}
	})
}
