package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/services/loader/internal/consume"
	"github.com/redms/redms/services/loader/internal/lease"
)

// Config is redms-loader's configuration, read once from REDMS_* variables.
// README.md's reference is generated from these tags.
type Config struct {
	NATSURL         string        `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222" desc:"NATS server URL(s), comma-separated"`
	Stream          string        `envconfig:"STREAM" default:"REDMS_WAL" desc:"JetStream stream that is the WAL (created by redms-capture; the loader only reads it)"`
	MetricsAddr     string        `envconfig:"METRICS_ADDR" default:":9102" desc:"listen address of /metrics, /healthz and /readyz (empty = off)"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info" desc:"log level: debug, info, warn, error"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"20s" desc:"on SIGTERM: applies in progress may finish for 3/4 of this, then are abandoned un-acked; leases are released and the process exits within it"`
	SentryDSN       string        `envconfig:"SENTRY_DSN" default:"" desc:"Sentry DSN for error reports (empty = off)"`

	ReplicaID        string        `envconfig:"REPLICA_ID" default:"" desc:"this replica's id in the lease bucket, letters, digits and -/_=. (default hostname-pid)"`
	WarehouseURL     string        `envconfig:"WAREHOUSE_URL" default:"" desc:"connection string of the warehouse (Postgres, or Redshift with sslmode as the URL gives it); required"`
	WarehouseDialect string        `envconfig:"WAREHOUSE_DIALECT" default:"postgres" desc:"warehouse dialect: postgres or redshift"`
	WindowDuration   time.Duration `envconfig:"WINDOW_DURATION" default:"10s" desc:"a window closes when its oldest message arrived this long ago (by a timer, also without further messages)"`
	WindowBytes      int64         `envconfig:"WINDOW_BYTES" default:"67108864" desc:"a window closes when its messages (body plus headers) reach this many bytes"`
	WindowRecords    int           `envconfig:"WINDOW_RECORDS" default:"200000" desc:"a window closes when it holds this many changes"`
	AckWait          time.Duration `envconfig:"ACK_WAIT" default:"5m" desc:"ack wait of the table consumers: a message not acked this long after delivery is delivered again (a new owner redelivers at once by recreating the consumer)"`
	ApplyRetries     int           `envconfig:"APPLY_RETRIES" default:"5" desc:"transient apply failures of one window retried with exponential backoff before its table is parked"`
	RetryBackoff     time.Duration `envconfig:"RETRY_BACKOFF" default:"1s" desc:"first retry delay of a failed apply, doubled each retry up to 1m"`
	LeaseTTL         time.Duration `envconfig:"LEASE_TTL" default:"15s" desc:"TTL of table leases and replica heartbeats (renewed every TTL/3); a dead replica's tables move within about 1.5 TTL"`
	PullBatch        int           `envconfig:"PULL_BATCH" default:"10000" desc:"messages the client buffers ahead of a table's window"`
	AckMode          string        `envconfig:"ACK_MODE" default:"purge" desc:"how a committed window leaves the stream: purge (one purge of the table's subject up to the window's last sequence; needs purge permission) or ack (every message acked)"`
	PprofAddr        string        `envconfig:"PPROF_ADDR" default:"" desc:"listen address of net/http/pprof (empty = off)"`

	S3Endpoint        string `envconfig:"S3_ENDPOINT" default:"" desc:"S3 endpoint URL for S3-compatible servers (path-style addressing when set; empty = AWS)"`
	S3Region          string `envconfig:"S3_REGION" default:"us-east-1" desc:"S3 region"`
	S3Bucket          string `envconfig:"S3_BUCKET" default:"" desc:"bucket of the staged window objects; required"`
	S3Prefix          string `envconfig:"S3_PREFIX" default:"redms/" desc:"key prefix of the staged window objects"`
	S3AccessKeyID     string `envconfig:"S3_ACCESS_KEY_ID" default:"" desc:"static S3 access key (with REDMS_S3_SECRET_ACCESS_KEY; empty = the AWS default credential chain)"`
	S3SecretAccessKey string `envconfig:"S3_SECRET_ACCESS_KEY" default:"" desc:"static S3 secret key"`
	S3PartBytes       int64  `envconfig:"S3_PART_BYTES" default:"33554432" desc:"uncompressed bytes per staged CSV part object"`
	S3Keep            bool   `envconfig:"S3_KEEP" default:"false" desc:"keep staged objects after a window commits (for debugging)"`

	TargetSchema    string `envconfig:"TARGET_SCHEMA" default:"" desc:"warehouse schema of the target tables (empty = the source schema)"`
	StateSchema     string `envconfig:"STATE_SCHEMA" default:"public" desc:"warehouse schema of the watermark table redms_applied"`
	TableKeys       string `envconfig:"TABLE_KEYS" default:"" desc:"key columns for tables whose messages carry none: public.orders=id;public.lines=order_id,line"`
	RedshiftIAMRole string `envconfig:"REDSHIFT_IAM_ROLE" default:"" desc:"IAM role ARN Redshift COPY uses to read the staged objects (empty = the S3 keys)"`
	NumericDefault  string `envconfig:"NUMERIC_DEFAULT" default:"19,8" desc:"precision,scale of the warehouse type of numeric columns without a typmod"`
}

// Validate checks the configuration of a loader run.
func (c Config) Validate() error {
	var errs []error
	if c.Stream == "" {
		errs = append(errs, errors.New("REDMS_STREAM is empty"))
	}
	if c.WarehouseURL == "" {
		errs = append(errs, errors.New("REDMS_WAREHOUSE_URL is required"))
	}
	if _, err := warehouseDialect(c.WarehouseDialect); err != nil {
		errs = append(errs, err)
	}
	if c.S3Bucket == "" {
		errs = append(errs, errors.New("REDMS_S3_BUCKET is required"))
	}
	if (c.S3AccessKeyID == "") != (c.S3SecretAccessKey == "") {
		errs = append(errs, errors.New("REDMS_S3_ACCESS_KEY_ID and REDMS_S3_SECRET_ACCESS_KEY go together"))
	}
	if c.WindowDuration <= 0 || c.WindowBytes <= 0 || c.WindowRecords <= 0 {
		errs = append(errs, errors.New("REDMS_WINDOW_DURATION, REDMS_WINDOW_BYTES and REDMS_WINDOW_RECORDS must be positive"))
	}
	if c.AckWait <= 0 || c.LeaseTTL < time.Second || c.ShutdownTimeout <= 0 || c.RetryBackoff <= 0 {
		errs = append(errs, errors.New("REDMS_ACK_WAIT, REDMS_SHUTDOWN_TIMEOUT and REDMS_RETRY_BACKOFF must be positive, REDMS_LEASE_TTL at least 1s"))
	}
	if c.ApplyRetries < 0 || c.PullBatch < 1 || c.S3PartBytes < 1 {
		errs = append(errs, errors.New("REDMS_APPLY_RETRIES must be at least 0, REDMS_PULL_BATCH and REDMS_S3_PART_BYTES at least 1"))
	}
	if c.AckMode != string(consume.AckPurge) && c.AckMode != string(consume.AckEach) {
		errs = append(errs, fmt.Errorf("REDMS_ACK_MODE %q: want purge or ack", c.AckMode))
	}
	if c.ReplicaID != "" && !lease.ValidID(c.ReplicaID) {
		errs = append(errs, fmt.Errorf("REDMS_REPLICA_ID %q: use letters, digits and any of -/_=. only", c.ReplicaID))
	}
	if _, err := ParseTableKeys(c.TableKeys); err != nil {
		errs = append(errs, fmt.Errorf("REDMS_TABLE_KEYS: %w", err))
	}
	if _, err := typemap.ParseNumeric(c.NumericDefault); err != nil {
		errs = append(errs, fmt.Errorf("REDMS_NUMERIC_DEFAULT: %w", err))
	}
	if _, err := service.NewLogger(io.Discard, c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("REDMS_LOG_LEVEL: %w", err))
	}
	return errors.Join(errs...)
}

// ParseTableKeys parses `public.orders=id;public.lines=order_id,line` (the
// format redms-capture reads too) into schema.table → key columns.
func ParseTableKeys(s string) (map[string][]string, error) {
	out := map[string][]string{}
	for item := range strings.SplitSeq(s, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		table, cols, ok := strings.Cut(item, "=")
		table = strings.TrimSpace(table)
		schema, name, dot := strings.Cut(table, ".")
		if !ok || !dot || schema == "" || name == "" {
			return nil, fmt.Errorf("parse table keys %q: want schema.table=col[,col]", item)
		}
		var keys []string
		for c := range strings.SplitSeq(cols, ",") {
			if c = strings.TrimSpace(c); c != "" {
				keys = append(keys, c)
			}
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("parse table keys %q: no columns", item)
		}
		out[table] = keys
	}
	return out, nil
}

// defaultReplicaID is hostname-pid with characters KV keys refuse dropped.
func defaultReplicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "loader"
	}
	clean := strings.Map(func(r rune) rune {
		if r < 128 && lease.ValidID(string(r)) {
			return r
		}
		return '_'
	}, host)
	return clean + "-" + strconv.Itoa(os.Getpid())
}

// warehouseDialect maps REDMS_WAREHOUSE_DIALECT to the applier's dialect.
func warehouseDialect(name string) (typemap.Dialect, error) {
	switch d := typemap.Dialect(name); d {
	case typemap.Postgres, typemap.Redshift:
		return d, nil
	}
	return "", fmt.Errorf("REDMS_WAREHOUSE_DIALECT %q: want postgres or redshift", name)
}
