package main

import (
	"math"
	"strings"
	"testing"
)

const exposition = `# HELP redms_loader_lag_seconds lag
# TYPE redms_loader_lag_seconds gauge
redms_loader_lag_seconds{table="public.a"} 1.5
redms_loader_lag_seconds{table="public.b \"q\""} 4
redms_loader_backlog_messages{table="public.a"} 10
redms_loader_backlog_messages{table="public.a"} 7
redms_loader_backlog_messages{table="public.b"} 3
redms_capture_changes_published_total{table="public.a"} 100 1700000000000
redms_capture_changes_published_total{table="public.b"} 50
redms_loader_apply_lag_seconds_bucket{le="1"} 0
redms_loader_apply_lag_seconds_bucket{le="2"} 50
redms_loader_apply_lag_seconds_bucket{le="4"} 90
redms_loader_apply_lag_seconds_bucket{le="+Inf"} 100
`

func TestParseAndAggregate(t *testing.T) {
	samples, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 11 {
		t.Fatalf("parsed %d samples, want 11", len(samples))
	}
	if got := samples[1].labels["table"]; got != `public.b "q"` {
		t.Errorf("escaped label = %q", got)
	}
	if got := sum(samples, "redms_capture_changes_published_total"); got != 150 {
		t.Errorf("sum = %v, want 150", got)
	}
	if got := maxOf(samples, "redms_loader_lag_seconds"); got != 4 {
		t.Errorf("max = %v, want 4", got)
	}
	if got := maxByLabel(samples, "redms_loader_backlog_messages", "table"); got != 13 {
		t.Errorf("backlog = %v, want 13 (max per table, then summed)", got)
	}
}

func TestQuantile(t *testing.T) {
	samples, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ q, want float64 }{
		{0.5, 2},    // rank 50 lands on the le=2 bound
		{0.7, 3},    // halfway between 50 and 90 in (2,4]
		{0.99, 4},   // above the last finite bucket: its bound
		{0.25, 1.5}, // halfway in (1,2]
	} {
		got, ok := quantile(samples, "redms_loader_apply_lag_seconds", tc.q)
		if !ok || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v,%v want %v", tc.q, got, ok, tc.want)
		}
	}
	if _, ok := quantile(samples, "redms_nothing", 0.5); ok {
		t.Error("quantile of a missing histogram reported ok")
	}
}

func TestParseRejects(t *testing.T) {
	for _, line := range []string{"novalue", `x{a="b} 1`, "x abc"} {
		if _, err := parseMetrics(strings.NewReader(line)); err == nil {
			t.Errorf("%q parsed without error", line)
		}
	}
}

func TestRenderEnv(t *testing.T) {
	got := string(renderEnv([][2]string{{"REDMS_NATS_URL", "nats://127.0.0.1:4222"}, {"REDMS_S3_BUCKET", "b"}}))
	want := "# written by redms-devstack up once every service was ready; removed when it stops\n" +
		"REDMS_NATS_URL=nats://127.0.0.1:4222\nREDMS_S3_BUCKET=b\n"
	if got != want {
		t.Errorf("renderEnv:\n%s\nwant:\n%s", got, want)
	}
}
