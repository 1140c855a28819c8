package main

import (
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/redms/redms/pkg/subject"
)

type metrics struct {
	published    *prometheus.CounterVec
	excluded     *prometheus.CounterVec
	transactions prometheus.Counter
	retries      prometheus.Counter
	inflight     prometheus.Gauge
	inflightMsgs prometheus.Gauge
	confirmed    prometheus.Gauge
	slotLag      prometheus.Gauge
	ready        prometheus.Gauge
	unparsed     prometheus.Counter

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
		inflight: f.NewGauge(prometheus.GaugeOpts{Name: "redms_capture_inflight_publishes",
			Help: "Publishes awaiting a JetStream PubAck."}),
		inflightMsgs: f.NewGauge(prometheus.GaugeOpts{Name: "redms_capture_inflight_messages",
			Help: "Same as redms_capture_inflight_publishes (the name deploy/ dashboards read)."}),
		confirmed: f.NewGauge(prometheus.GaugeOpts{Name: "redms_capture_confirmed_lsn",
			Help: "Flush LSN last confirmed to Postgres, as a number."}),
		slotLag: f.NewGauge(prometheus.GaugeOpts{Name: "redms_capture_slot_lag_bytes",
			Help: "pg_current_wal_lsn() - confirmed_flush_lsn of the slot, polled."}),
		ready: f.NewGauge(prometheus.GaugeOpts{Name: "redms_capture_ready",
			Help: "1 while replication is streaming and JetStream is reachable."}),
		unparsed: f.NewCounter(prometheus.CounterOpts{Name: "redms_capture_unparsed_records_total",
			Help: "Records from the slot that did not parse; published on their table's subject for the loader to park."}),
		bySubject: map[string]prometheus.Counter{},
	}
}

func (m *metrics) onPublished(msg *nats.Msg) {
	c, ok := m.bySubject[msg.Subject]
	if !ok {
		label := msg.Subject
		if t, err := subject.Parse(msg.Subject); err == nil {
			label = t.String()
		}
		c = m.published.WithLabelValues(label)
		m.bySubject[msg.Subject] = c
	}
	c.Inc()
}

func (m *metrics) setInflight(n int) {
	m.inflight.Set(float64(n))
	m.inflightMsgs.Set(float64(n))
}
