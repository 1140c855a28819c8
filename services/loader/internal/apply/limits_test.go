package apply

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redms/redms/services/loader/internal/warehouse"
)

// limitScenarios are the Redshift rules of issue 10 that both dialects
// follow: text keys compared with their trailing blanks, declared types,
// rows under COPY's 4 MB, one staging COPY per window.
func limitScenarios(t *testing.T, e *env) {
	t.Run("trailing blanks in text keys", func(t *testing.T) {
		e.t = t
		k := func(s string) rec { return pk(s, "code") }
		e.apply(e.window("blanks",
			k(`table public.blanks: INSERT: code[text]:'x' v[integer]:1 body[text]:'bx'`),
			k(`table public.blanks: INSERT: code[text]:'x  ' v[integer]:1 body[text]:'bx2'`),
			k(`table public.blanks: INSERT: code[text]:'y ' v[integer]:1 body[text]:'by'`),
		))
		e.apply(e.window("blanks",
			// an upsert of 'x ' must not delete 'x' or 'x  '
			k(`table public.blanks: INSERT: code[text]:'x ' v[integer]:2 body[text]:'b'`),
			// nor a delete of 'y' the row 'y '
			k(`table public.blanks: DELETE: code[text]:'y'`),
			// nor an update of known columns of 'x  ' the row 'x'
			k(`table public.blanks: UPDATE: code[text]:'x  ' v[integer]:5 body[text]:unchanged-toast-datum`),
		))
		want := `{"code":"x  ","v":5,"body":"bx2"}` + "\n" + `{"code":"x ","v":2,"body":"b"}` + "\n" +
			`{"code":"x","v":1,"body":"bx"}` + "\n" + `{"code":"y ","v":1,"body":"by"}`
		if got := e.sorted("blanks"); got != want {
			t.Errorf("blanks rows:\n%s\nwant\n%s", got, want)
		}
		// a key move from 'y ' to 'y' finds no row 'y' and moves 'y '
		e.apply(e.window("blanks",
			k(`table public.blanks: UPDATE: old-key: code[text]:'y ' new-tuple: code[text]:'y' v[integer]:6 body[text]:unchanged-toast-datum`),
		))
		want = strings.Replace(want, `{"code":"y ","v":1,"body":"by"}`, `{"code":"y","v":6,"body":"by"}`, 1)
		if got := e.sorted("blanks"); got != want {
			t.Errorf("blanks rows after the move:\n%s\nwant\n%s", got, want)
		}
	})
	t.Run("declared types", func(t *testing.T) {
		e.t = t
		types := map[string]string{"amount": "numeric(10,2)", "code": "character varying(20)", "fix": "character(3)",
			"big": "numeric(50,40)", "stale": "numeric(5,1)", "at": "timestamp(3) with time zone"}
		e.apply(e.window("typed",
			pk(`table public.typed: INSERT: id[integer]:1 amount[numeric]:12345678.915 code[character varying]:'abc' fix[character]:'ab ' `+
				`big[numeric]:1.5 stale[text]:'s' plain[numeric]:2.5 at[timestamp with time zone]:'2026-01-02 03:04:05.123+01'`).typed(types),
		))
		if got, want := e.columns("typed"), "id INTEGER, amount NUMERIC(10,2), code VARCHAR(80), fix VARCHAR(12), big NUMERIC(38,37), "+
			"stale VARCHAR(65535), plain NUMERIC(19,8), at TIMESTAMPTZ"; got != want {
			t.Errorf("columns:\n%s\nwant\n%s", got, want)
		}
		e.expect("typed", `{"id":1,"amount":12345678.92,"code":"abc","fix":"ab ","big":1.5000000000000000000000000000000000000,"stale":"s","plain":2.50000000,"at":"2026-01-02T02:04:05.123+00:00"}`)
		// a wider declared type widens, a narrower one keeps the column, a
		// value longer than its declared type allows widens to fit it
		types["code"], types["fix"], types["amount"], types["tag"] = "character varying(30)", "character(1)", "numeric(8,1)", "character varying(1)"
		e.apply(e.window("typed",
			pk(`table public.typed: INSERT: id[integer]:2 amount[numeric]:7.25 code[character varying]:'`+strings.Repeat("é", 30)+`' fix[character]:'z' `+
				`big[numeric]:1 stale[text]:'s2' plain[numeric]:1 at[timestamp with time zone]:null tag[character varying]:'abcdef'`).typed(types),
			pk(`table public.typed: INSERT: id[integer]:3 amount[numeric]:1 code[character varying]:'c' fix[character]:'y' `+
				`big[numeric]:1 stale[text]:'t' plain[numeric]:1 at[timestamp with time zone]:null tag[character varying]:'g'`).typed(types),
		))
		if got, want := e.columns("typed"), "id INTEGER, amount NUMERIC(10,2), code VARCHAR(120), fix VARCHAR(12), big NUMERIC(38,37), "+
			"stale VARCHAR(65535), plain NUMERIC(19,8), at TIMESTAMPTZ, tag VARCHAR(6)"; got != want {
			t.Errorf("columns after a wider declared type:\n%s\nwant\n%s", got, want)
		}
		if got := e.query(`SELECT octet_length(code) || ' ' || amount || ' ' || tag FROM public.typed WHERE id = 2`); got != "60 7.25 abcdef" {
			t.Errorf("id 2: %s, want 60 7.25 abcdef", got)
		}
		// beyond the longest VARCHAR a value is cut, counted
		res := e.apply(e.window("typed",
			pk(`table public.typed: INSERT: id[integer]:4 amount[numeric]:1 code[character varying]:'c' fix[character]:'y' `+
				`big[numeric]:1 stale[text]:'`+strings.Repeat("s", 70000)+`' plain[numeric]:1 at[timestamp with time zone]:null tag[character varying]:'g'`).typed(types),
		))
		if res.Adjusted["text-truncated"] != 1 || e.query(`SELECT octet_length(stale) FROM public.typed WHERE id = 4`) != "65535" {
			t.Errorf("a 70000-byte text: %v", res.Adjusted)
		}
	})
	t.Run("rows over 4 MB are cut to fit", func(t *testing.T) {
		e.t = t
		var b strings.Builder
		b.WriteString(`table public.wide: INSERT: id[integer]:1`)
		for i := range 70 { // 70 × 65535 bytes: 4.4 MiB
			fmt.Fprintf(&b, ` c%02d[text]:'%s'`, i, strings.Repeat("w", 65535))
		}
		res := e.apply(e.window("wide", pk(b.String())))
		if !res.Applied || res.Adjusted["row-too-large"] != 1 {
			t.Errorf("result %+v", res)
		}
		sum := make([]string, 70)
		for i := range sum {
			sum[i] = fmt.Sprintf("coalesce(octet_length(c%02d), 0)", i)
		}
		var n int
		fmt.Sscan(e.query(`SELECT `+strings.Join(sum, " + ")+` FROM public.wide WHERE id = 1`), &n)
		if n > 4<<20 || n < 4<<20-1024 {
			t.Errorf("the row keeps %d value bytes; want just under 4 MiB", n)
		}
	})
	t.Run("one staging COPY per window", func(t *testing.T) {
		e.t = t
		cfg := e.ap.cfg
		cfg.KeepObjects, cfg.S3Prefix = true, "once/"
		keep, err := New(cfg, e.pool, e.s3c, e.snap, nil)
		if err != nil {
			t.Fatal(err)
		}
		apply := func(w Window) Result {
			t.Helper()
			res, err := keep.Apply(context.Background(), w)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		apply(e.window("once",
			pk(`table public.once: INSERT: id[integer]:1 a[integer]:1 b[text]:'b1'`),
			pk(`table public.once: INSERT: id[integer]:2 a[integer]:2 b[text]:'b2'`),
			pk(`table public.once: INSERT: id[integer]:3 a[integer]:3 b[text]:'b3'`),
			pk(`table public.once: INSERT: id[integer]:4 a[integer]:4 b[text]:'b4'`),
		))
		before := e.manifests("once/")
		apply(e.window("once",
			pk(`table public.once: DELETE: id[integer]:1`),
			pk(`table public.once: INSERT: id[integer]:5 a[integer]:5 b[text]:'b5'`),
			pk(`table public.once: UPDATE: id[integer]:2 a[integer]:20 b[text]:unchanged-toast-datum`),
			pk(`table public.once: UPDATE: id[integer]:3 a[integer]:unchanged-toast-datum b[text]:'b30'`),
			pk(`table public.once: UPDATE: old-key: id[integer]:4 new-tuple: id[integer]:6 a[integer]:60 b[text]:unchanged-toast-datum`),
		))
		if got := e.manifests("once/") - before; got != 1 {
			t.Errorf("the window staged %d files, want 1", got)
		}
		e.expect("once", `{"id":2,"a":20,"b":"b2"}
{"id":3,"a":3,"b":"b30"}
{"id":5,"a":5,"b":"b5"}
{"id":6,"a":60,"b":"b4"}`)
	})
}

// sorted is the target's rows as JSON, sorted bytewise (row_to_json's text
// ordered by the C collation: blanks before quotes).
func (e *env) sorted(table string) string {
	e.t.Helper()
	return e.query(`SELECT string_agg(j, E'\n' ORDER BY j COLLATE "C") FROM (SELECT row_to_json(t)::text AS j FROM public.` + warehouse.Ident(table) + ` t) r`)
}

// query reads the one value a query selects from the backing database, as
// text.
func (e *env) query(sql string) string {
	e.t.Helper()
	var s *string
	if err := e.read.QueryRow(context.Background(), `SELECT (`+sql+`)::text`).Scan(&s); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	if s == nil {
		return "NULL"
	}
	return *s
}
