package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/pkg/tablekeys"
	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/services/loader/internal/consume"
	"github.com/redms/redms/services/loader/internal/lease"
	"github.com/redms/redms/services/loader/internal/warehouse"
)

// Config is redms-loader's configuration, read once from REDMS_* variables
// by readConfig, which validates it and keeps the parsed values. README.md's
// reference is generated from these tags. The warehouse settings are
// typemap.Warehouse, which redms-verify reads too.
type Config struct {
	service.Settings `defaults:"METRICS_ADDR=:9102"`
	typemap.Warehouse

	ReplicaID      string        `envconfig:"REPLICA_ID" default:"" desc:"this replica's id in the lease bucket, letters, digits and -/_=. (default hostname-pid)"`
	WindowDuration time.Duration `envconfig:"WINDOW_DURATION" default:"10s" desc:"a window closes when its oldest message arrived this long ago (by a timer, also without further messages)"`
	WindowBytes    int64         `envconfig:"WINDOW_BYTES" default:"67108864" desc:"a window closes when its messages (body plus headers) and what it keeps of each change (~300 bytes) reach this many bytes"`
	WindowRecords  int           `envconfig:"WINDOW_RECORDS" default:"200000" desc:"a window closes when it holds this many changes (a batch is never split: a window may pass it by one batch)"`
	AckWait        time.Duration `envconfig:"ACK_WAIT" default:"5m" desc:"ack wait of the table consumers: a message not acked this long after delivery is delivered again (a new owner redelivers at once by recreating the consumer)"`
	RetryBackoff   time.Duration `envconfig:"RETRY_BACKOFF" default:"1s" desc:"first retry delay of a window that failed transiently (a serialization conflict, a dropped connection, slow S3), doubled each retry up to 1m; retries last as long as the fault"`
	StallAlarm     time.Duration `envconfig:"STALL_ALARM" default:"5m" desc:"a table whose window has failed transiently, or that has held changes back waiting for an earlier one, for this long logs at error level (once per this period)"`
	StreamReplicas int           `envconfig:"STREAM_REPLICAS" default:"1" desc:"replicas of the stream (capture creates it); the loader's KV buckets (leases, parked tables) get as many, so a lost NATS node loses no lease: 3 on a 3-node cluster"`
	LeaseTTL       time.Duration `envconfig:"LEASE_TTL" default:"15s" desc:"TTL of table leases and replica heartbeats (renewed every TTL/3); a dead replica's tables move within about 1.5 TTL"`
	PullBatch      int           `envconfig:"PULL_BATCH" default:"10000" desc:"messages the client buffers ahead of a table's window (and at most a quarter of REDMS_WINDOW_BYTES, at least 8 MiB)"`
	AckMode        string        `envconfig:"ACK_MODE" default:"purge" desc:"how a committed window leaves the stream: purge (one purge of the table's subject up to the window's last sequence; needs purge permission) or ack (every message acked)"`

	S3Endpoint        string `envconfig:"S3_ENDPOINT" default:"" desc:"S3 endpoint URL for S3-compatible servers (path-style addressing when set; empty = AWS)"`
	S3Region          string `envconfig:"S3_REGION" default:"us-east-1" desc:"S3 region"`
	S3Bucket          string `envconfig:"S3_BUCKET" default:"" desc:"bucket of the staged window objects; required"`
	S3Prefix          string `envconfig:"S3_PREFIX" default:"redms/" desc:"key prefix of the staged window objects"`
	S3AccessKeyID     string `envconfig:"S3_ACCESS_KEY_ID" default:"" desc:"static S3 access key (with REDMS_S3_SECRET_ACCESS_KEY; empty = the AWS default credential chain)"`
	S3SecretAccessKey string `envconfig:"S3_SECRET_ACCESS_KEY" default:"" desc:"static S3 secret key"`
	S3PartBytes       int64  `envconfig:"S3_PART_BYTES" default:"33554432" desc:"uncompressed bytes per staged CSV part object"`
	S3Keep            bool   `envconfig:"S3_KEEP" default:"false" desc:"keep staged objects after a window commits (for debugging)"`

	TableKeys       string `envconfig:"TABLE_KEYS" default:"" desc:"key columns for tables whose messages carry none: public.orders=id;public.lines=order_id,line"`
	RedshiftIAMRole string `envconfig:"REDSHIFT_IAM_ROLE" default:"" desc:"IAM role ARN Redshift COPY uses to read the staged objects (empty = the S3 keys)"`

	RedshiftDistStyle string `envconfig:"REDSHIFT_DISTSTYLE" default:"key" desc:"distribution of the Redshift targets the loader creates: key (DISTKEY on the first key column; staging tables distributed alike, so merges stay on their slices), auto or even (e.g. when the first key column is skewed); keyless tables get AUTO"`

	// Parsed by Validate.
	dialect   typemap.Dialect
	typeMap   typemap.Options
	tableKeys tablekeys.Keys
	distStyle warehouse.DistStyle
}

// readConfig reads the environment, validates it and fills in the default
// replica id.
func readConfig() (Config, error) {
	var cfg Config
	if err := service.ReadConfig("REDMS", &cfg, cfg.Validate); err != nil {
		return cfg, err
	}
	if cfg.ReplicaID == "" {
		cfg.ReplicaID = defaultReplicaID()
	}
	return cfg, nil
}

// Validate checks the configuration of a loader run and keeps what it
// parsed (dialect, type mapping options, table keys, distribution style).
func (c *Config) Validate() error {
	var err error
	errs := []error{c.Settings.Validate()}
	if c.dialect, c.typeMap, err = c.Warehouse.Parse(); err != nil {
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
	if c.AckWait <= 0 || c.LeaseTTL < time.Second || c.RetryBackoff <= 0 || c.StallAlarm <= 0 {
		errs = append(errs, errors.New("REDMS_ACK_WAIT, REDMS_RETRY_BACKOFF and REDMS_STALL_ALARM must be positive, REDMS_LEASE_TTL at least 1s"))
	}
	if c.PullBatch < 1 || c.S3PartBytes < 1 {
		errs = append(errs, errors.New("REDMS_PULL_BATCH and REDMS_S3_PART_BYTES must be at least 1"))
	}
	if c.AckMode != string(consume.AckPurge) && c.AckMode != string(consume.AckEach) {
		errs = append(errs, fmt.Errorf("REDMS_ACK_MODE %q: want purge or ack", c.AckMode))
	}
	if c.ReplicaID != "" && !lease.ValidID(c.ReplicaID) {
		errs = append(errs, fmt.Errorf("REDMS_REPLICA_ID %q: use letters, digits and any of -/_=. only", c.ReplicaID))
	}
	if c.tableKeys, err = tablekeys.Parse(c.TableKeys); err != nil {
		errs = append(errs, fmt.Errorf("REDMS_TABLE_KEYS: %w", err))
	}
	if c.distStyle, err = warehouse.ParseDistStyle(c.RedshiftDistStyle); err != nil {
		errs = append(errs, fmt.Errorf("REDMS_REDSHIFT_DISTSTYLE: %w", err))
	}
	return errors.Join(errs...)
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
