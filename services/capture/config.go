package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/redms/redms/services/capture/internal/catalog"
	"github.com/redms/redms/services/capture/internal/selection"
	"github.com/redms/redms/services/capture/internal/source"
)

// Config is redms-capture's configuration, read once from REDMS_* variables.
// README.md's reference is generated from these tags.
type Config struct {
	NATSURL         string        `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222" desc:"NATS server URL(s), comma-separated"`
	Stream          string        `envconfig:"STREAM" default:"REDMS_WAL" desc:"JetStream stream that is the WAL; created if missing, validated if present"`
	StreamReplicas  int           `envconfig:"STREAM_REPLICAS" default:"1" desc:"replicas of the stream when capture creates it"`
	StreamMaxBytes  int64         `envconfig:"STREAM_MAX_BYTES" default:"-1" desc:"max bytes of the stream when capture creates it (-1 = unlimited); when full, capture waits (discard new)"`
	DedupWindow     time.Duration `envconfig:"DEDUP_WINDOW" default:"2m" desc:"duplicate window of the stream (Nats-Msg-Id dedup) when capture creates it"`
	MetricsAddr     string        `envconfig:"METRICS_ADDR" default:":9101" desc:"listen address of /metrics, /healthz and /readyz (empty = off)"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info" desc:"log level: debug, info, warn, error"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"20s" desc:"on SIGTERM, how long to wait for publishes in flight to be acknowledged before the last confirm"`
	SentryDSN       string        `envconfig:"SENTRY_DSN" default:"" desc:"Sentry DSN: every error log line becomes an event (empty = off)"`

	SourceURL string `envconfig:"SOURCE_URL" default:"" desc:"connection string of the source database (capture adds replication=database); required unless --stdin"`
	Slot      string `envconfig:"SLOT" default:"redms" desc:"logical replication slot; created with test_decoding if missing"`
	Database  string `envconfig:"DATABASE" default:"" desc:"database token of subjects and message ids (default: the source's current_database(), stdin with --stdin)"`

	MaxInflight           int           `envconfig:"MAX_INFLIGHT" default:"4096" desc:"publishes awaiting a JetStream PubAck at most"`
	AckTimeout            time.Duration `envconfig:"ACK_TIMEOUT" default:"10s" desc:"a publish without PubAck after this long is retried"`
	TxnBuffer             int           `envconfig:"TXN_BUFFER" default:"10000" desc:"changes of one transaction buffered until its COMMIT; a larger transaction is published in parts without commit headers"`
	ConfirmEvery          time.Duration `envconfig:"CONFIRM_EVERY" default:"500ms" desc:"how often a newly acknowledged position is confirmed to Postgres (keepalives are answered at 3/4 of wal_sender_timeout regardless)"`
	SlotLagEvery          time.Duration `envconfig:"SLOT_LAG_EVERY" default:"10s" desc:"how often redms_capture_slot_lag_bytes is polled"`
	TableKeys             string        `envconfig:"TABLE_KEYS" default:"" desc:"key columns for tables the catalog gives none (and for --stdin): public.orders=id;public.lines=order_id,line"`
	IncludeTables         string        `envconfig:"INCLUDE_TABLES" default:"" desc:"comma-separated schema.table patterns (* wildcard) to publish; empty = all"`
	ExcludeTables         string        `envconfig:"EXCLUDE_TABLES" default:"" desc:"comma-separated schema.table patterns (* wildcard) never published; counted in redms_capture_excluded_changes_total"`
	PartitionSuffixRegexp string        `envconfig:"PARTITION_SUFFIX_REGEXP" default:"" desc:"regexp of a table-name suffix to strip for inheritance-style partitions, e.g. _\\d{4}_\\d{2}$"`
	PprofAddr             string        `envconfig:"PPROF_ADDR" default:"" desc:"listen address of net/http/pprof (empty = off)"`
}

// Validate checks the configuration for the chosen mode.
func (c Config) Validate(stdin bool) error {
	var errs []error
	if !stdin && c.SourceURL == "" {
		errs = append(errs, errors.New("REDMS_SOURCE_URL is required (or use --stdin)"))
	}
	if !stdin && !source.ValidSlotName(c.Slot) {
		errs = append(errs, fmt.Errorf("REDMS_SLOT %q: use 1-63 of a-z, 0-9, _", c.Slot))
	}
	if c.Stream == "" {
		errs = append(errs, errors.New("REDMS_STREAM is empty"))
	}
	if c.MaxInflight < 1 {
		errs = append(errs, fmt.Errorf("REDMS_MAX_INFLIGHT %d: want at least 1", c.MaxInflight))
	}
	if c.TxnBuffer < 1 {
		errs = append(errs, fmt.Errorf("REDMS_TXN_BUFFER %d: want at least 1", c.TxnBuffer))
	}
	if c.StreamReplicas < 1 {
		errs = append(errs, fmt.Errorf("REDMS_STREAM_REPLICAS %d: want at least 1", c.StreamReplicas))
	}
	if c.AckTimeout <= 0 || c.ShutdownTimeout <= 0 || c.ConfirmEvery <= 0 || c.SlotLagEvery <= 0 {
		errs = append(errs, errors.New("REDMS_ACK_TIMEOUT, REDMS_SHUTDOWN_TIMEOUT, REDMS_CONFIRM_EVERY and REDMS_SLOT_LAG_EVERY must be positive"))
	}
	if _, err := catalog.ParseTableKeys(c.TableKeys); err != nil {
		errs = append(errs, fmt.Errorf("REDMS_TABLE_KEYS: %w", err))
	}
	if _, err := selection.NewFilter(c.IncludeTables, c.ExcludeTables); err != nil {
		errs = append(errs, err)
	}
	if _, err := selection.NewSuffix(c.PartitionSuffixRegexp); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
