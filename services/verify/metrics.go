package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/redms/redms/services/verify/internal/compare"
)

// metrics are redms-verify's under --every: the last result per table.
type metrics struct {
	result      *prometheus.GaugeVec
	differences *prometheus.GaugeVec
	rows        *prometheus.CounterVec
	lastRun     prometheus.Gauge
	duration    prometheus.Gauge
	runs        *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		result: f.NewGaugeVec(prometheus.GaugeOpts{Name: "redms_verify_table_result",
			Help: "last result per table: 0 equal, 1 different, 2 could not compare"}, []string{"table"}),
		differences: f.NewGaugeVec(prometheus.GaugeOpts{Name: "redms_verify_table_differences",
			Help: "rows that differed in the table's last comparison, by kind (missing, extra, changed)"}, []string{"table", "kind"}),
		rows: f.NewCounterVec(prometheus.CounterOpts{Name: "redms_verify_rows_compared_total",
			Help: "source rows compared"}, []string{"table"}),
		lastRun: f.NewGauge(prometheus.GaugeOpts{Name: "redms_verify_last_run_timestamp_seconds",
			Help: "unix time the last comparison ended"}),
		duration: f.NewGauge(prometheus.GaugeOpts{Name: "redms_verify_last_run_duration_seconds",
			Help: "how long the last comparison took"}),
		runs: f.NewCounterVec(prometheus.CounterOpts{Name: "redms_verify_runs_total",
			Help: "comparisons by result: equal, different, error"}, []string{"result"}),
	}
}

func (m *metrics) observe(rep compare.Report, err error, start time.Time) {
	for _, t := range rep.Tables {
		code := 0
		switch t.Status {
		case compare.Different:
			code = 1
		case compare.Failed:
			code = 2
		}
		m.result.WithLabelValues(t.Table).Set(float64(code))
		m.differences.WithLabelValues(t.Table, string(compare.Missing)).Set(float64(t.Missing))
		m.differences.WithLabelValues(t.Table, string(compare.Extra)).Set(float64(t.Extra))
		m.differences.WithLabelValues(t.Table, string(compare.Changed)).Set(float64(t.Changed))
		m.rows.WithLabelValues(t.Table).Add(float64(t.SourceRows))
	}
	result := []string{"equal", "different", "error"}[rep.ExitCode()]
	if err != nil {
		result = "error"
	}
	m.runs.WithLabelValues(result).Inc()
	m.lastRun.Set(float64(time.Now().Unix()))
	m.duration.Set(time.Since(start).Seconds())
}
