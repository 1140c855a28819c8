package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/redms/redms/pkg/subject"
)

type metrics struct {
	published     *prometheus.CounterVec
	excluded      *prometheus.CounterVec
	transactions  prometheus.Counter
	retries       prometheus.Counter
	inflight      prometheus.Gauge
	confirmed     prometheus.Gauge
	slotLag       prometheus.Gauge
	slotRetained  prometheus.Gauge
	slotWALStatus *prometheus.GaugeVec
	standby       prometheus.Gauge
	ready         prometheus.Gauge
	unparsed      prometheus.Counter
	snapRows      *prometheus.CounterVec
	snapLeft      *prometheus.GaugeVec

	bySubject map[string]prometheus.Counter // used by the publisher goroutine only
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		published: f.NewCounterVec(prometheus.CounterOpts{Name: "redms_capture_changes_published_total",
			Help: "Changes with a JetStream PubAck, per table (schema.table of the subject)."}, []string{"table"}),
		excluded: f.NewCounterVec(prometheus.CounterOpts{Name: "redms_capture_excluded_changes_total",
			Help: "Changes not published because REDMS_INCLUDE_TABLES/REDMS_EXCLUDE_TABLES exclude their table."}, []string{"table"}),
		transactions: f.NewCounter(prometheus.CounterOpts{Name: "redms_capture_transactions_total",
			Help: "Transactions read from the slot (or stdin) and handed to the publisher."}),
		retries: f.NewCounter(prometheus.CounterOpts{Name: "redms_capture_publish_retries_total",
			Help: "Publishes sent again after an error or a PubAck timeout."}),
		inflight: f.NewGauge(prometheus.GaugeOpts{Name: "redms_capture_inflight_messages",
			Help: "Publishes awaiting a JetStream PubAck."}),
		confirmed: f.NewGauge(prometheus.GaugeOpts{Name: "redms_capture_confirmed_lsn",
			Help: "Flush LSN last confirmed to Postgres, as a number."}),
		slotLag: f.NewGauge(prometheus.GaugeOpts{Name: "redms_capture_slot_lag_bytes",
			Help: "pg_current_wal_lsn() - confirmed_flush_lsn of the slot, polled."}),
		snapRows: f.NewCounterVec(prometheus.CounterOpts{Name: "redms_capture_snapshot_rows_total",
			Help: "Rows read by snapshots and published (or dropped because they changed while read), per table."}, []string{"table"}),
		snapLeft: f.NewGaugeVec(prometheus.GaugeOpts{Name: "redms_capture_snapshot_remaining",
			Help: "Rows a running snapshot still has to read (reltuples estimate minus rows done; 0 when done), per table."}, []string{"table"}),
		slotRetained: f.NewGauge(prometheus.GaugeOpts{Name: "redms_capture_slot_retained_wal_bytes",
			Help: "WAL Postgres keeps for the slot: pg_current_wal_lsn() - restart_lsn, polled."}),
		slotWALStatus: f.NewGaugeVec(prometheus.GaugeOpts{Name: "redms_capture_slot_wal_status",
			Help: "1 for the slot's wal_status (reserved, extended, unreserved, lost), 0 for the others; unreserved or lost: changes are lost, run a snapshot."}, []string{"status"}),
		standby: f.NewGauge(prometheus.GaugeOpts{Name: "redms_capture_standby",
			Help: "1 while the slot is active in another session (another capture) and this one waits to take it over."}),
		ready: f.NewGauge(prometheus.GaugeOpts{Name: "redms_capture_ready",
			Help: "1 while replication is streaming and JetStream is reachable."}),
		unparsed: f.NewCounter(prometheus.CounterOpts{Name: "redms_capture_unparsed_records_total",
			Help: "Records from the slot that did not parse; published on their table's subject for the loader to park."}),
		bySubject: map[string]prometheus.Counter{},
	}
}

func (m *metrics) onPublished(subj string, changes int) {
	c, ok := m.bySubject[subj]
	if !ok {
		label := subj
		if t, err := subject.Parse(subj); err == nil {
			label = t.String()
		}
		c = m.published.WithLabelValues(label)
		m.bySubject[subj] = c
	}
	c.Add(float64(changes))
}

func (m *metrics) setInflight(n int) {
	m.inflight.Set(float64(n))
}
