// Package metrics holds the loader's Prometheus metrics. Label table is
// schema.table unquoted.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Loader is every metric redms-loader exports.
type Loader struct {
	WindowsApplied *prometheus.CounterVec // table
	Changes        *prometheus.CounterVec // table
	ApplyLag       prometheus.Histogram
	ParkedTables   prometheus.Gauge
	Rows           *prometheus.CounterVec   // table, action
	ApplyDuration  *prometheus.HistogramVec // table
	ApplyErrors    *prometheus.CounterVec   // table
	StagedBytes    *prometheus.CounterVec   // table
	Backlog        *prometheus.GaugeVec     // table
	Lag            *prometheus.GaugeVec     // table
	Replays        *prometheus.CounterVec   // table
	Parked         *prometheus.GaugeVec     // table
	Skipped        *prometheus.CounterVec   // table, reason
	Adjusted       *prometheus.CounterVec   // table, rule
	OwnedTables    prometheus.Gauge
	LeasesLost     prometheus.Counter
}

// New registers the loader's metrics on reg.
func New(reg prometheus.Registerer) *Loader {
	f := promauto.With(reg)
	return &Loader{
		WindowsApplied: f.NewCounterVec(prometheus.CounterOpts{
			Name: "redms_loader_windows_applied_total",
			Help: "Windows committed to the warehouse (or found applied already by the watermark).",
		}, []string{"table"}),
		Changes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "redms_loader_changes_applied_total",
			Help: "Changes whose window committed in the warehouse.",
		}, []string{"table"}),
		ApplyLag: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "redms_loader_apply_lag_seconds",
			Help:    "Per window: warehouse commit time minus source commit time of its last change.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 14),
		}),
		ParkedTables: f.NewGauge(prometheus.GaugeOpts{
			Name: "redms_loader_parked_tables",
			Help: "Tables parked (every replica reads the same KV bucket, so every replica reports the total).",
		}),
		Rows: f.NewCounterVec(prometheus.CounterOpts{
			Name: "redms_loader_rows_total",
			Help: "Rows applied to the warehouse, by action.",
		}, []string{"table", "action"}),
		ApplyDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "redms_loader_apply_duration_seconds",
			Help:    "Time to stage and apply one window, transaction included.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}, []string{"table"}),
		ApplyErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "redms_loader_apply_errors_total",
			Help: "Failed window applies, retried ones included.",
		}, []string{"table"}),
		StagedBytes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "redms_loader_staged_bytes_total",
			Help: "Bytes written to S3 staging objects.",
		}, []string{"table"}),
		Backlog: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "redms_loader_backlog_messages",
			Help: "Messages of the table not yet acked: consumer pending plus ack pending.",
		}, []string{"table"}),
		Lag: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "redms_loader_lag_seconds",
			Help: "Now minus the commit time of the last applied change while a backlog exists; 0 when caught up.",
		}, []string{"table"}),
		Replays: f.NewCounterVec(prometheus.CounterOpts{
			Name: "redms_loader_replays_total",
			Help: "Changes folded as replays (duplicates or out-of-order after a redelivery).",
		}, []string{"table"}),
		Parked: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "redms_loader_table_parked",
			Help: "1 while the table is parked and waits for redms-loader resume.",
		}, []string{"table"}),
		Skipped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "redms_loader_skipped_changes_total",
			Help: "Changes not applied, by reason (e.g. a table without keys).",
		}, []string{"table", "reason"}),
		Adjusted: f.NewCounterVec(prometheus.CounterOpts{
			Name: "redms_loader_values_adjusted_total",
			Help: "Values changed to fit the warehouse type, by rule.",
		}, []string{"table", "rule"}),
		OwnedTables: f.NewGauge(prometheus.GaugeOpts{
			Name: "redms_loader_owned_tables",
			Help: "Tables this replica holds the lease of.",
		}),
		LeasesLost: f.NewCounter(prometheus.CounterOpts{
			Name: "redms_loader_leases_lost_total",
			Help: "Table leases this replica lost to another before releasing them.",
		}),
	}
}

// Forget drops the per-table gauges of a table this replica no longer owns,
// so that only the owner reports them.
func (m *Loader) Forget(table string) {
	m.Backlog.DeleteLabelValues(table)
	m.Lag.DeleteLabelValues(table)
	m.Parked.DeleteLabelValues(table)
}
