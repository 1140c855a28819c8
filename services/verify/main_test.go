package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/services/verify/internal/compare"
)

func TestRunExitCodesAndOutput(t *testing.T) {
	pg := testenv.StartPostgres(t)
	pg.CreateDatabase(t, "src")
	pg.CreateDatabase(t, "wh")
	pg.Exec(t, "src", "CREATE TABLE public.t (id int PRIMARY KEY, v varchar(10)); INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 500) g")
	pg.Exec(t, "wh", "CREATE TABLE public.t (id INTEGER, v VARCHAR(40)); INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 500) g")
	t.Setenv("REDMS_SOURCE_URL", pg.URL("src"))
	t.Setenv("REDMS_WAREHOUSE_URL", pg.URL("wh"))
	t.Setenv("REDMS_VERIFY_CONFIRM_TIMEOUT", "1s")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var out, errs bytes.Buffer
	if code := run(ctx, nil, &out, &errs); code != 0 {
		t.Fatalf("equal tables: exit %d\n%s%s", code, out.String(), errs.String())
	}
	if !strings.Contains(out.String(), "public.t") || !strings.Contains(out.String(), "equal") {
		t.Fatalf("report:\n%s", out.String())
	}

	pg.Exec(t, "wh", "UPDATE public.t SET v = 'x' WHERE id = 42")
	out.Reset()
	if code := run(ctx, []string{"--json", "public.t"}, &out, &errs); code != 1 {
		t.Fatalf("a changed row: exit %d\n%s%s", code, out.String(), errs.String())
	}
	var rep compare.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out.String())
	}
	if len(rep.Tables) != 1 || len(rep.Tables[0].Diffs) != 1 || rep.Tables[0].Diffs[0].Kind != compare.Changed ||
		*rep.Tables[0].Diffs[0].Key["id"] != "42" || strings.Join(rep.Tables[0].Diffs[0].Columns, ",") != "v" {
		t.Fatalf("--json report: %s", out.String())
	}

	out.Reset()
	if code := run(ctx, []string{"public.nosuch"}, &out, &errs); code != 2 {
		t.Fatalf("a table that does not exist: exit %d, want 2\n%s", code, out.String())
	}
	t.Setenv("REDMS_WAREHOUSE_DIALECT", "oracle")
	if code := run(ctx, nil, &out, &errs); code != 2 || !strings.Contains(errs.String(), "REDMS_WAREHOUSE_DIALECT") {
		t.Fatalf("bad configuration: exit %d\n%s", code, errs.String())
	}
}

// TestRunEvery: --every keeps comparing and serves the last result per
// table, the rows compared and the differences as metrics; SIGTERM (the
// context) stops it cleanly.
func TestRunEvery(t *testing.T) {
	pg := testenv.StartPostgres(t)
	pg.CreateDatabase(t, "src")
	pg.CreateDatabase(t, "wh")
	pg.Exec(t, "src", "CREATE TABLE public.t (id int PRIMARY KEY, v varchar(10)); INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 300) g")
	pg.Exec(t, "wh", "CREATE TABLE public.t (id INTEGER, v VARCHAR(40)); INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 299) g")
	addr := testenv.FreeAddr(t)
	t.Setenv("REDMS_SOURCE_URL", pg.URL("src"))
	t.Setenv("REDMS_WAREHOUSE_URL", pg.URL("wh"))
	t.Setenv("REDMS_VERIFY_CONFIRM_TIMEOUT", "1s")
	t.Setenv("REDMS_METRICS_ADDR", addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var out, errs bytes.Buffer
	go func() { done <- run(ctx, []string{"--every", "200ms"}, &out, &errs) }()

	testenv.Eventually(t, time.Minute, "two comparisons in the metrics", func() bool {
		s, err := testenv.Scrape(addr)
		if err != nil {
			return false
		}
		runs, _ := s.Value(`redms_verify_runs_total{result="different"}`)
		return runs >= 2
	})
	s, err := testenv.Scrape(addr)
	if err != nil {
		t.Fatal(err)
	}
	for series, want := range map[string]float64{
		`redms_verify_table_result{table="public.t"}`:                     1,
		`redms_verify_table_differences{kind="missing",table="public.t"}`: 1,
		`redms_verify_table_differences{kind="changed",table="public.t"}`: 0,
	} {
		if got, ok := s.Value(series); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if rows, _ := s.Value(`redms_verify_rows_compared_total{table="public.t"}`); rows < 600 {
		t.Errorf("rows compared %v, want at least two runs of 300", rows)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("stopped with exit %d\n%s", code, errs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("--every did not stop when its context ended")
	}
}
