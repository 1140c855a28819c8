package scrape

import (
	"math"
	"strings"
	"testing"
)

const exposition = `# HELP redms_loader_lag_seconds lag
# TYPE redms_loader_lag_seconds gauge
redms_loader_lag_seconds{table="public.a"} 1.5
redms_loader_lag_seconds{table="public.b \"q\""} 4
redms_loader_backlog_messages{replica="r1",table="public.a"} 10
redms_loader_backlog_messages{replica="r2",table="public.a"} 7
redms_loader_backlog_messages{replica="r1",table="public.b"} 3
redms_capture_changes_published_total{table="public.a"} 100 1700000000000
redms_capture_changes_published_total{table="public.b"} 50
# TYPE redms_loader_apply_lag_seconds histogram
redms_loader_apply_lag_seconds_bucket{le="1"} 0
redms_loader_apply_lag_seconds_bucket{le="2"} 50
redms_loader_apply_lag_seconds_bucket{le="4"} 90
redms_loader_apply_lag_seconds_bucket{le="+Inf"} 100
redms_loader_apply_lag_seconds_sum 250
redms_loader_apply_lag_seconds_count 100
`

func TestParseAndAggregate(t *testing.T) {
	samples, err := Parse(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := samples.Value(`redms_loader_lag_seconds{table="public.b \"q\""}`); !ok || v != 4 {
		t.Errorf("escaped label: %v %v", v, ok)
	}
	if got := samples.Sum("redms_capture_changes_published_total"); got != 150 {
		t.Errorf("sum = %v, want 150", got)
	}
	if got := samples.Max("redms_loader_lag_seconds"); got != 4 {
		t.Errorf("max = %v, want 4", got)
	}
	if got := samples.MaxByLabel("redms_loader_backlog_messages", "table"); got != 13 {
		t.Errorf("backlog = %v, want 13 (max per table, then summed)", got)
	}
	if v, ok := samples.Value(`redms_loader_backlog_messages{replica="r2",table="public.a"}`); !ok || v != 7 {
		t.Errorf("series with two labels: %v %v", v, ok)
	}
	if v, ok := samples.Value("redms_loader_apply_lag_seconds_count"); !ok || v != 100 {
		t.Errorf("histogram count: %v %v", v, ok)
	}
}

func TestQuantile(t *testing.T) {
	samples, err := Parse(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ q, want float64 }{
		{0.5, 2},    // rank 50 lands on the le=2 bound
		{0.7, 3},    // halfway between 50 and 90 in (2,4]
		{0.99, 4},   // above the last finite bucket: its bound
		{0.25, 1.5}, // halfway in (1,2]
	} {
		got, ok := samples.Quantile("redms_loader_apply_lag_seconds", tc.q)
		if !ok || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v,%v want %v", tc.q, got, ok, tc.want)
		}
	}
	if _, ok := samples.Quantile("redms_nothing", 0.5); ok {
		t.Error("quantile of a missing histogram reported ok")
	}
}

func TestParseRejects(t *testing.T) {
	for _, text := range []string{"novalue\n", "x{a=\"b} 1\n", "x abc\n"} {
		if _, err := Parse(strings.NewReader(text)); err == nil {
			t.Errorf("%q parsed without error", text)
		}
	}
}
