// Package stackenv is how redms-capture, redms-loader and redms-rsemu are
// configured for a stack on one machine (redms-devstack and the end-to-end
// tests): the environment or flags each needs to reach the local Postgres,
// NATS, S3 and warehouse, with the short intervals a local stack wants.
// Callers add their own settings after these; a later value of a variable
// wins.
package stackenv

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Stack is where the services of a local stack find each other.
type Stack struct {
	SourceURL string // the source database
	NATSURL   string
	Stream    string // empty = REDMS_WAL
	// WarehouseURL is what the loaders dial: the warehouse database, or
	// redms-rsemu in front of it.
	WarehouseURL string
	Dialect      string // postgres or redshift
	S3           S3
	Bucket       string
}

// S3 is an S3-compatible server with static keys.
type S3 struct {
	Endpoint, Region, AccessKeyID, SecretAccessKey string
}

// Base is this process's environment without REDMS_* and AWS_* variables,
// so a developer's shell cannot change what the services see.
func Base() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REDMS_") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (s Stack) stream() string {
	if s.Stream == "" {
		return "REDMS_WAL"
	}
	return s.Stream
}

// Capture is redms-capture's environment: slot on the source, metrics on
// metricsAddr; then extra.
func (s Stack) Capture(slot, metricsAddr string, extra ...string) []string {
	return append(append(Base(),
		"REDMS_SOURCE_URL="+s.SourceURL,
		"REDMS_NATS_URL="+s.NATSURL,
		"REDMS_STREAM="+s.stream(),
		"REDMS_SLOT="+slot,
		"REDMS_METRICS_ADDR="+metricsAddr,
		"REDMS_CONFIRM_EVERY=200ms",
		"REDMS_SLOT_LAG_EVERY=2s",
		"REDMS_SHUTDOWN_TIMEOUT=5s",
	), extra...)
}

// Loader is the environment of the loader replica called replica with
// windows of windowDuration and metrics on metricsAddr; then extra.
func (s Stack) Loader(replica string, windowDuration time.Duration, metricsAddr string, extra ...string) []string {
	return append(append(Base(),
		"REDMS_NATS_URL="+s.NATSURL,
		"REDMS_STREAM="+s.stream(),
		"REDMS_REPLICA_ID="+replica,
		"REDMS_WAREHOUSE_URL="+s.WarehouseURL,
		"REDMS_WAREHOUSE_DIALECT="+s.Dialect,
		"REDMS_WINDOW_DURATION="+windowDuration.String(),
		"REDMS_LEASE_TTL=5s",
		"REDMS_RETRY_BACKOFF=200ms",
		"REDMS_SHUTDOWN_TIMEOUT=5s",
		"REDMS_S3_ENDPOINT="+s.S3.Endpoint,
		"REDMS_S3_REGION="+s.S3.Region,
		"REDMS_S3_BUCKET="+s.Bucket,
		"REDMS_S3_ACCESS_KEY_ID="+s.S3.AccessKeyID,
		"REDMS_S3_SECRET_ACCESS_KEY="+s.S3.SecretAccessKey,
		"REDMS_METRICS_ADDR="+metricsAddr,
	), extra...)
}

// RsemuArgs are redms-rsemu's flags: listen on listen, in front of the
// warehouse database at warehouseDBURL, COPY from the stack's S3.
func (s Stack) RsemuArgs(listen, warehouseDBURL string) []string {
	return []string{
		"--listen", listen,
		"--postgres", warehouseDBURL,
		"--s3-endpoint", s.S3.Endpoint,
		"--s3-region", s.S3.Region,
		"--s3-access-key-id", s.S3.AccessKeyID,
		"--s3-secret-access-key", s.S3.SecretAccessKey,
	}
}

// RsemuURL is the URL a client dials to reach database db through
// redms-rsemu listening on listen.
func RsemuURL(listen, db string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", listen, db)
}
