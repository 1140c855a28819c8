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
	Conflicts      *prometheus.CounterVec   // table
	StagedBytes    *prometheus.CounterVec   // table
	Copies         *prometheus.CounterVec   // table
	Backlog        *prometheus.GaugeVec     // table
	Lag            *prometheus.GaugeVec     // table
	Replays        *prometheus.CounterVec   // table
	Parked         *prometheus.GaugeVec     // table
	Unapplied      *prometheus.CounterVec   // table, reason
	Holding        *prometheus.GaugeVec     // table
	Retrying       *prometheus.GaugeVec     // table
	ConsumerGaps   *prometheus.CounterVec   // table
	PullStalls     *prometheus.CounterVec   // table
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
		Conflicts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "redms_loader_serialization_conflicts_total",
			Help: "Window applies the warehouse aborted for a serialization conflict (Postgres 40001, Redshift ERROR 1023), retried; counted in redms_loader_apply_errors_total too.",
		}, []string{"table"}),
		StagedBytes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "redms_loader_staged_bytes_total",
			Help: "Bytes written to S3 staging objects.",
		}, []string{"table"}),
		Copies: f.NewCounterVec(prometheus.CounterOpts{
			Name: "redms_loader_copy_statements_total",
			Help: "COPY statements of committed windows (one per window that stages rows).",
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
			Help: "Messages at or below the applied position (or duplicates of one position), plus replay-shaped orders the fold saw.",
		}, []string{"table"}),
		Parked: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "redms_loader_table_parked",
			Help: "1 while the table is parked and waits for redms-loader resume.",
		}, []string{"table"}),
		Unapplied: f.NewCounterVec(prometheus.CounterOpts{
			Name: "redms_loader_unapplied_changes_total",
			Help: "Changes that cannot be applied (an UPDATE or DELETE without key or old row), by reason; a snapshot of the table was requested.",
		}, []string{"table", "reason"}),
		Holding: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "redms_loader_holding_seconds",
			Help: "How long the table has held changes back that wait for an earlier change (a prev position or split parts) not yet arrived; 0 when none.",
		}, []string{"table"}),
		Retrying: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "redms_loader_retrying_seconds",
			Help: "How long the table's current window has failed with transient errors and is being retried; 0 when none.",
		}, []string{"table"}),
		ConsumerGaps: f.NewCounterVec(prometheus.CounterOpts{
			Name: "redms_loader_consumer_gaps_total",
			Help: "Times the table's consumer delivered to another process (its delivery sequence jumped); the runner recreated it.",
		}, []string{"table"}),
		PullStalls: f.NewCounterVec(prometheus.CounterOpts{
			Name: "redms_loader_pull_stalls_total",
			Help: "Times the table's consumer held messages but delivered none while the runner waited for them (a pull lost in a cluster failover); the runner recreated it.",
		}, []string{"table"}),
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
	m.Holding.DeleteLabelValues(table)
	m.Retrying.DeleteLabelValues(table)
}
