package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/pkg/tablekeys"
	"github.com/redms/redms/services/capture/internal/selection"
	"github.com/redms/redms/services/capture/internal/source"
)

// Config is redms-capture's configuration, read once from REDMS_* variables
// by readConfig, which validates it and keeps the parsed values. README.md's
// reference is generated from these tags.
type Config struct {
	service.Settings `defaults:"METRICS_ADDR=:9101"`

	StreamReplicas int           `envconfig:"STREAM_REPLICAS" default:"1" desc:"replicas of the stream when capture creates it"`
	StreamMaxBytes int64         `envconfig:"STREAM_MAX_BYTES" default:"-1" desc:"max bytes of the stream when capture creates it (-1 = unlimited); when full, capture waits (discard new)"`
	DedupWindow    time.Duration `envconfig:"DEDUP_WINDOW" default:"2m" desc:"duplicate window of the stream (Nats-Msg-Id dedup) when capture creates it"`

	SourceURL  string `envconfig:"SOURCE_URL" default:"" desc:"connection string of the source database (capture adds replication=database); required unless --stdin"`
	Slot       string `envconfig:"SLOT" default:"redms" desc:"logical replication slot; created with test_decoding if missing (see REDMS_SLOT_CREATE)"`
	SlotCreate string `envconfig:"SLOT_CREATE" default:"auto" desc:"when the slot is missing: auto = create it unless KV REDMS_CAPTURE records that capture read it before (then refuse: changes since may be lost), always = create it (loudly when read before), never = refuse"`
	Database   string `envconfig:"DATABASE" default:"" desc:"database token of subjects and message ids (default: the source's current_database(), stdin with --stdin)"`

	MaxInflight           int           `envconfig:"MAX_INFLIGHT" default:"4096" desc:"publishes awaiting a JetStream PubAck at most"`
	MaxInflightBytes      int           `envconfig:"MAX_INFLIGHT_BYTES" default:"33554432" desc:"bytes of message bodies awaiting a JetStream PubAck at most (a larger message is sent alone); on a stream with max bytes, at most an eighth of them"`
	BatchBytes            int           `envconfig:"BATCH_BYTES" default:"262144" desc:"a table's batch (one message of consecutive changes) closes when its body reaches this many bytes; never above the server's max payload with the headers"`
	BatchRecords          int           `envconfig:"BATCH_RECORDS" default:"1000" desc:"a table's batch closes when it holds this many changes (1 = one change per message, as before batches)"`
	BatchLinger           time.Duration `envconfig:"BATCH_LINGER" default:"5ms" desc:"a table's batch closes this long after its first change at the latest; it also delays confirming by at most this"`
	AckTimeout            time.Duration `envconfig:"ACK_TIMEOUT" default:"10s" desc:"a publish without PubAck after this long is retried"`
	TxnBuffer             int           `envconfig:"TXN_BUFFER" default:"10000" desc:"changes of one transaction buffered until its COMMIT; a larger transaction is published in parts without commit headers"`
	ConfirmEvery          time.Duration `envconfig:"CONFIRM_EVERY" default:"500ms" desc:"how often a newly acknowledged position is confirmed to Postgres (keepalives are answered at 3/4 of wal_sender_timeout regardless)"`
	SlotLagEvery          time.Duration `envconfig:"SLOT_LAG_EVERY" default:"10s" desc:"how often the slot's lag, retained WAL and wal_status (redms_capture_slot_*) are polled"`
	StandbyRetry          time.Duration `envconfig:"STANDBY_RETRY" default:"1s" desc:"while the slot is active in another session (a standby capture), how often to try to take it over"`
	TableKeys             string        `envconfig:"TABLE_KEYS" default:"" desc:"key columns for tables the catalog gives none (and for --stdin): public.orders=id;public.lines=order_id,line"`
	IncludeTables         string        `envconfig:"INCLUDE_TABLES" default:"" desc:"comma-separated schema.table patterns (* wildcard) to publish; empty = all"`
	ExcludeTables         string        `envconfig:"EXCLUDE_TABLES" default:"" desc:"comma-separated schema.table patterns (* wildcard) never published; counted in redms_capture_excluded_changes_total"`
	PartitionSuffixRegexp string        `envconfig:"PARTITION_SUFFIX_REGEXP" default:"" desc:"regexp of a table-name suffix to strip for inheritance-style partitions, e.g. _\\d{4}_\\d{2}$"`
	Snapshot              string        `envconfig:"SNAPSHOT" default:"initial" desc:"initial = when capture creates the slot, snapshot every selected table (existing rows arrive through the stream); never = only snapshots requested (redms-capture snapshot, the loader)"`
	SnapshotChunkRows     int           `envconfig:"SNAPSHOT_CHUNK_ROWS" default:"10000" desc:"rows a snapshot reads per chunk (one short query between two watermarks)"`
	SnapshotRate          int           `envconfig:"SNAPSHOT_RATE" default:"50000" desc:"rows per second a snapshot reads at most (0 = unlimited)"`
	SnapshotFullMaxRows   int64         `envconfig:"SNAPSHOT_FULL_MAX_ROWS" default:"100000" desc:"a table without a key is snapshotted whole in one chunk up to this many rows; a larger one is refused"`
	StdinEpoch            uint64        `envconfig:"STDIN_EPOCH" default:"0" desc:"--stdin: base of the run's source positions and message ids (0 = the start time in ns), so a later run's messages are never taken for duplicates"`

	// Parsed by Validate.
	tableKeys tablekeys.Keys
	filter    selection.Filter
	suffix    selection.Suffix
}

// Values of REDMS_SNAPSHOT.
const (
	SnapshotInitial = "initial"
	SnapshotNever   = "never"
)

// readConfig reads the environment and validates it for the chosen mode.
func readConfig(stdin bool) (Config, error) {
	var cfg Config
	err := service.ReadConfig("REDMS", &cfg, func() error { return cfg.Validate(stdin) })
	return cfg, err
}

// Validate checks the configuration for the chosen mode and keeps what it
// parsed (table keys, the table filter, the partition suffix).
func (c *Config) Validate(stdin bool) error {
	errs := []error{c.Settings.Validate()}
	if !stdin && c.SourceURL == "" {
		errs = append(errs, errors.New("REDMS_SOURCE_URL is required (or use --stdin)"))
	}
	if !stdin && !source.ValidSlotName(c.Slot) {
		errs = append(errs, fmt.Errorf("REDMS_SLOT %q: use 1-63 of a-z, 0-9, _", c.Slot))
	}
	switch c.SlotCreate {
	case source.SlotCreateAuto, source.SlotCreateAlways, source.SlotCreateNever:
	default:
		errs = append(errs, fmt.Errorf("REDMS_SLOT_CREATE %q: want auto, always or never", c.SlotCreate))
	}
	if c.MaxInflight < 1 {
		errs = append(errs, fmt.Errorf("REDMS_MAX_INFLIGHT %d: want at least 1", c.MaxInflight))
	}
	if c.MaxInflightBytes < 1 || c.BatchBytes < 1 || c.BatchRecords < 1 {
		errs = append(errs, errors.New("REDMS_MAX_INFLIGHT_BYTES, REDMS_BATCH_BYTES and REDMS_BATCH_RECORDS must be at least 1"))
	}
	if c.BatchLinger < 0 {
		errs = append(errs, fmt.Errorf("REDMS_BATCH_LINGER %s: want 0 or more", c.BatchLinger))
	}
	if c.TxnBuffer < 1 {
		errs = append(errs, fmt.Errorf("REDMS_TXN_BUFFER %d: want at least 1", c.TxnBuffer))
	}
	if c.StreamReplicas < 1 {
		errs = append(errs, fmt.Errorf("REDMS_STREAM_REPLICAS %d: want at least 1", c.StreamReplicas))
	}
	if c.AckTimeout <= 0 || c.ConfirmEvery <= 0 || c.SlotLagEvery <= 0 || c.StandbyRetry <= 0 {
		errs = append(errs, errors.New("REDMS_ACK_TIMEOUT, REDMS_CONFIRM_EVERY, REDMS_SLOT_LAG_EVERY and REDMS_STANDBY_RETRY must be positive"))
	}
	if c.Snapshot != SnapshotInitial && c.Snapshot != SnapshotNever {
		errs = append(errs, fmt.Errorf("REDMS_SNAPSHOT %q: want initial or never", c.Snapshot))
	}
	if c.SnapshotChunkRows < 1 || c.SnapshotRate < 0 || c.SnapshotFullMaxRows < 0 {
		errs = append(errs, errors.New("REDMS_SNAPSHOT_CHUNK_ROWS must be at least 1, REDMS_SNAPSHOT_RATE and REDMS_SNAPSHOT_FULL_MAX_ROWS at least 0"))
	}
	var err error
	if c.tableKeys, err = tablekeys.Parse(c.TableKeys); err != nil {
		errs = append(errs, fmt.Errorf("REDMS_TABLE_KEYS: %w", err))
	}
	if c.filter, err = selection.NewFilter(c.IncludeTables, c.ExcludeTables); err != nil {
		errs = append(errs, err)
	}
	if c.suffix, err = selection.NewSuffix(c.PartitionSuffixRegexp); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
