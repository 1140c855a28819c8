package stage

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testinfra/testenv"
)

func v(s string) Value { return Value{Text: s} }

var nullV = Value{Null: true}

func TestNullMarker(t *testing.T) {
	cases := []struct {
		rows [][]Value
		want string
	}{
		{nil, "~N"},
		{[][]Value{{v(`\N`), v("NULL"), nullV}}, "~N"},
		{[][]Value{{v("~N")}}, "~N1"},
		{[][]Value{{v("~N"), v("~N1")}, {v("~N3")}}, "~N2"},
		{[][]Value{{Value{Text: "~N", Null: true}}}, "~N"},
	}
	for _, c := range cases {
		if got := NullMarker(c.rows); got != c.want {
			t.Errorf("NullMarker(%v) = %q, want %q", c.rows, got, c.want)
		}
	}
}

func TestAppendRecord(t *testing.T) {
	got := string(AppendRecord(nil, []Value{v(""), nullV, v(`a"b,c`), v("x\r\ny"), v(`\`)}, 7, "~N"))
	want := "\"\",~N,\"a\"\"b,c\",\"x\r\ny\",\"\\\",~N,~N\n"
	if got != want {
		t.Errorf("got %q want %q", got, want)
	}
}

func TestEncodeParts(t *testing.T) {
	var rows [][]Value
	for i := range 100 {
		rows = append(rows, []Value{v(fmt.Sprint(i)), v(strings.Repeat("x", 50))})
	}
	f, err := Encode(rows, 2, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Parts) < 5 {
		t.Fatalf("%d parts for %d CSV bytes at 1000 a part", len(f.Parts), f.CSVBytes)
	}
	b, err := io.ReadAll(f.CSV())
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 100 || recs[99][0] != "99" || int64(len(b)) != f.CSVBytes {
		t.Fatalf("read back %d records, last %v, %d bytes (want %d)", len(recs), recs[len(recs)-1], len(b), f.CSVBytes)
	}
	// short rows end in NULLs; RecordBytes counts exactly what is written
	short, err := Encode([][]Value{{v("1")}, {v(`a"b`), nullV, v("c")}}, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(short.CSV())
	if err != nil || string(b) != "\"1\",~N,~N\n\"a\"\"b\",~N,\"c\"\n" || short.CSVBytes != int64(len(b)) {
		t.Fatalf("short rows: %q (%d bytes counted) %v", b, short.CSVBytes, err)
	}
	if n := RecordBytes([]Value{v(`a"b`), nullV}, 3, 2); n != len(`"a""b",~N,~N`) {
		t.Fatalf("RecordBytes = %d", n)
	}
	empty, err := Encode(nil, 3, 1000)
	if err != nil || len(empty.Parts) != 1 || empty.Rows != 0 {
		t.Fatalf("empty file: %+v %v", empty, err)
	}
}

func TestDirAndManifest(t *testing.T) {
	tbl := subject.Table{DB: "shop", Schema: "public", Name: "Order Items"}
	d := Dir("redms/", tbl, 10, 20)
	if d != "redms/shop/public/Order~20Items/10-20/" {
		t.Errorf("Dir = %q", d)
	}
	f := File{Parts: [][]byte{make([]byte, 7), make([]byte, 9)}}
	got := string(Manifest("bkt", d, &f))
	want := `{"entries":[{"url":"s3://bkt/redms/shop/public/Order~20Items/10-20/part-00000.csv.gz","mandatory":true,"meta":{"content_length":7}},` +
		`{"url":"s3://bkt/redms/shop/public/Order~20Items/10-20/part-00001.csv.gz","mandatory":true,"meta":{"content_length":9}}]}`
	if got != want {
		t.Errorf("manifest\n%s\nwant\n%s", got, want)
	}
}

func TestStorePutDelete(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartS3(t)
	srv.CreateBucket(t, "stage")
	c := srv.Client(t)
	st := &Store{Client: c, Bucket: "stage"}
	f, err := Encode([][]Value{{v("a"), nullV}}, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := Dir("p/", subject.Table{DB: "d", Schema: "s", Name: "t"}, 1, 2)
	keys, url, err := st.Put(ctx, dir, &f)
	if err != nil {
		t.Fatal(err)
	}
	if url != "s3://stage/p/d/s/t/1-2/manifest" || len(keys) != 2 {
		t.Fatalf("url %q keys %v", url, keys)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("stage"), Key: aws.String(keys[0])})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(body) != string(f.Parts[0]) {
		t.Fatal("part differs from what was staged")
	}
	if err := st.Delete(ctx, keys); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("stage")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 0 {
		t.Fatalf("%d objects left after delete", len(list.Contents))
	}
}

// FuzzCSVRoundTrip writes values with Encode, COPYs them into a real
// Postgres with the file's NULL marker, and reads them back exactly.
func FuzzCSVRoundTrip(f *testing.F) {
	seeds := []string{"", `\N`, "NULL", `\`, `"`, `""`, ",", "\r\n", "\n", "\r", "~N", "~N1", `\.`, "a,\"b\"\nc", "é😀", " ", "null"}
	for i, a := range seeds {
		for j, b := range []string{"", `\N`, "~N", "x"} {
			f.Add(a, b, seeds[(i+j)%len(seeds)], uint8(i+j))
		}
	}
	pg := testenv.StartPostgres(f)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.CreateDatabase(f, "fuzzcsv"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, `CREATE TABLE rt (n int, a text, b text, c text)`); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, a, b, c string, nulls uint8) {
		for _, s := range []string{a, b, c} {
			if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
				return // Postgres text holds neither NUL nor invalid UTF-8
			}
		}
		in := [][]Value{
			{v("1"), {Text: a, Null: nulls&1 != 0}, {Text: b, Null: nulls&2 != 0}, {Text: c, Null: nulls&4 != 0}},
			{v("2"), {Text: c, Null: nulls&8 != 0}, {Text: a, Null: nulls&16 != 0}, {Text: b, Null: nulls&32 != 0}},
		}
		file, err := Encode(in, 4, 16)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `DELETE FROM rt`); err != nil {
			t.Fatal(err)
		}
		sql := fmt.Sprintf(`COPY rt (n, a, b, c) FROM STDIN WITH (FORMAT csv, NULL '%s')`, file.NullMarker)
		tag, err := conn.PgConn().CopyFrom(ctx, file.CSV(), sql)
		if err != nil {
			t.Fatalf("copy %+v: %v", in, err)
		}
		if tag.RowsAffected() != 2 {
			t.Fatalf("copied %d rows", tag.RowsAffected())
		}
		rows, err := conn.Query(ctx, `SELECT a, b, c FROM rt ORDER BY n`)
		if err != nil {
			t.Fatal(err)
		}
		var got [][]Value
		for rows.Next() {
			var x, y, z *string
			if err := rows.Scan(&x, &y, &z); err != nil {
				t.Fatal(err)
			}
			got = append(got, []Value{opt(x), opt(y), opt(z)})
		}
		if err := rows.Err(); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		for i := range in {
			for j := range 3 {
				w := in[i][j+1]
				if w.Null {
					w.Text = ""
				}
				if got[i][j] != w {
					t.Fatalf("row %d col %d: got %+v, want %+v (marker %q)", i, j, got[i][j], w, file.NullMarker)
				}
			}
		}
	})
}

func opt(s *string) Value {
	if s == nil {
		return Value{Null: true}
	}
	return Value{Text: *s}
}
