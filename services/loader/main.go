// Command redms-loader applies the WAL stream to the warehouse: per table,
// windows of changes are folded per key, staged to S3 as gzipped CSV and
// applied in one transaction, then acked. Any number of replicas share the
// tables through leases. `redms-loader resume <schema.table>` resumes a
// parked table. See README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/natsconn"
	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/services/loader/internal/apply"
	"github.com/redms/redms/services/loader/internal/assign"
	"github.com/redms/redms/services/loader/internal/consume"
	"github.com/redms/redms/services/loader/internal/lease"
	"github.com/redms/redms/services/loader/internal/metrics"
	"github.com/redms/redms/services/loader/internal/park"
	"github.com/redms/redms/services/loader/internal/snapshot"
	"github.com/redms/redms/services/loader/internal/window"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `usage:
  redms-loader                      apply the stream to the warehouse (configured by REDMS_* variables)
  redms-loader resume <table>       resume a parked table: schema.table, db.schema.table or its consumer name
`

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := service.SignalContext(context.Background())
	defer stop()
	switch {
	case len(args) == 0:
		return serve(ctx, stderr)
	case args[0] == "resume" && len(args) == 2:
		return resume(ctx, args[1], stdout, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
}

func serve(ctx context.Context, stderr io.Writer) int {
	cfg, err := readConfig()
	if err != nil {
		fmt.Fprintln(stderr, "redms-loader:", err)
		return 2
	}
	p, err := service.New(service.Options{Name: "redms-loader", Version: version, Tags: map[string]string{"replica": cfg.ReplicaID}, Log: stderr}, cfg.Settings)
	if err != nil {
		fmt.Fprintln(stderr, "redms-loader:", err)
		return 2
	}
	defer p.Close()
	// Every Error line (a parked table, a lost lease) becomes a Sentry event.
	log := p.Log.With("replica", cfg.ReplicaID)
	if os.Getenv("GOMEMLIMIT") == "" {
		limit := memoryLimit(cfg.WindowBytes)
		debug.SetMemoryLimit(limit)
		log.Info("memory limit from the window size (set GOMEMLIMIT to override)", "limit_bytes", limit)
	}
	if err := p.Run(ctx, func(ctx context.Context) error { return loader(ctx, p, cfg, log) }); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// memoryLimit is the Go runtime's soft memory limit for a window of
// windowBytes: the window's messages, what the applier builds from them
// (parsed changes, folded rows, staged CSV) and a fixed 100 MiB for the
// clients, buffers and code. Without a limit the collector lets the heap
// grow to twice what is live (GOGC=100), and the peak of a big window is
// live data, so a limit near what is live caps the resident size at about
// 2× the window instead of 4-5×; the collector runs more often only while
// a window that big is in memory. With many tables filling big windows at
// once the live heap can pass the limit; the collector then works harder
// (at most half the CPU) rather than fail: set GOMEMLIMIT for such a fleet.
// The limit is a tenth below the 2× window + 100 MiB the resident size
// should stay under: it is soft (allocation bursts pass it until the
// collector catches up), and the resident size counts memory the runtime
// does not.
func memoryLimit(windowBytes int64) int64 {
	return (2*windowBytes + 100<<20) / 10 * 9
}

// loader connects to NATS, the warehouse and S3, then runs the
// coordinator (and through it a runner per owned table) until ctx ends.
func loader(ctx context.Context, p *service.Process, cfg Config, log *slog.Logger) error {
	m := metrics.New(p.Registry)
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("redms-loader "+cfg.ReplicaID),
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second))
	if err != nil {
		return fmt.Errorf("connect to nats %s: %w", cfg.NATSURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("open jetstream: %w", err)
	}
	pool, err := warehousePool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	s3c, err := s3Client(ctx, cfg)
	if err != nil {
		return err
	}
	applier, err := apply.New(applyConfig(cfg), pool, s3c, snapshot.New(js, cfg.ReplicaID, cfg.StreamReplicas), log)
	if err != nil {
		return fmt.Errorf("start applier: %w", err)
	}
	leases, parks, err := openBuckets(ctx, js, cfg, log)
	if err != nil {
		return err
	}
	// The coordinator turns at least every LEASE_TTL/3 whether or not NATS
	// answers (a turn can take long when NATS does not answer: each call
	// waits for its timeout); no turn for 20 TTLs means it is stuck.
	beat := p.Health.Heartbeat("coordinator", max(20*cfg.LeaseTTL, 5*time.Minute))
	coord := assign.New(assign.Config{
		Stream:          cfg.Stream,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Turned:          beat.Beat,
		Unanswered:      func(err error) { natsconn.MoveServer(nc, log, err) },
		Runner: consume.Config{
			Stream:     cfg.Stream,
			Replica:    cfg.ReplicaID,
			AckWait:    cfg.AckWait,
			Limits:     window.Limits{Duration: cfg.WindowDuration, Bytes: cfg.WindowBytes, Records: cfg.WindowRecords},
			Backoff:    cfg.RetryBackoff,
			MaxBackoff: time.Minute,
			StallAlarm: cfg.StallAlarm,
			Idle:       5 * time.Second,
			PullBatch:  cfg.PullBatch,
			AckMode:    consume.AckMode(cfg.AckMode),
		},
	}, js, leases, parks, consume.Deps{JS: js, Applier: crashHook(applier, log), Parks: parks, Metrics: m, Log: log})
	p.Go("readiness", func(ctx context.Context) error { return readiness(ctx, p.Health, coord, nc) })
	log.Info("started", "stream", cfg.Stream, "lease_ttl", cfg.LeaseTTL.String(),
		"window_duration", cfg.WindowDuration.String(), "window_bytes", cfg.WindowBytes, "window_records", cfg.WindowRecords)
	return coord.Run(ctx)
}

// readiness reports ready while NATS is connected and the coordinator has
// completed a round.
func readiness(ctx context.Context, h *service.Health, coord *assign.Coordinator, nc *nats.Conn) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		h.SetReady(coord.Ready() && nc.IsConnected())
		select {
		case <-ctx.Done():
			h.SetReady(false)
			return nil
		case <-t.C:
		}
	}
}

// bucketAttemptTimeout bounds one attempt to open the loader's buckets.
const bucketAttemptTimeout = 10 * time.Second

// openBuckets opens the lease and parked buckets, waiting for NATS.
func openBuckets(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger) (leases *lease.Store, parks *park.Store, err error) {
	err = service.Retry(ctx, service.Backoff{Min: time.Second, Max: 30 * time.Second}, service.Bounded(bucketAttemptTimeout, func(ctx context.Context) error {
		if leases, err = lease.Open(ctx, js, cfg.ReplicaID, cfg.LeaseTTL, cfg.StreamReplicas); err != nil {
			return err
		}
		parks, err = park.Open(ctx, js, cfg.StreamReplicas)
		return err
	}), func(err error, wait time.Duration) {
		log.Warn("open loader buckets; retrying", "err", err, "backoff", wait.String())
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open loader buckets: %w", err)
	}
	return leases, parks, nil
}

// s3Client builds the staging client: path-style on a custom endpoint,
// static keys when given, else the AWS default credential chain.
func s3Client(ctx context.Context, cfg Config) (*s3.Client, error) {
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(cfg.S3Region)}
	if cfg.S3AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.S3AccessKeyID, cfg.S3SecretAccessKey, "")))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load aws configuration: %w", err)
	}
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.S3Endpoint)
			o.UsePathStyle = true
		}
	}), nil
}

// applyConfig is the applier's part of the validated configuration.
func applyConfig(cfg Config) apply.Config {
	return apply.Config{
		Dialect:           cfg.dialect,
		TargetSchema:      cfg.TargetSchema,
		StateSchema:       cfg.StateSchema,
		TableKeys:         cfg.tableKeys.ByName(),
		NumericDefault:    cfg.typeMap.NumericDefault,
		S3Bucket:          cfg.S3Bucket,
		S3Prefix:          cfg.S3Prefix,
		PartBytes:         cfg.S3PartBytes,
		KeepObjects:       cfg.S3Keep,
		RedshiftIAMRole:   cfg.RedshiftIAMRole,
		S3AccessKeyID:     cfg.S3AccessKeyID,
		S3SecretAccessKey: cfg.S3SecretAccessKey,
		S3Region:          cfg.S3Region,
		DistStyle:         cfg.distStyle,
		JSONSuper:         cfg.typeMap.JSONSuper,
		ByteaVarbyte:      cfg.typeMap.ByteaVarbyte,
	}
}

// crashAfterCommitEnv is a test hook for the end-to-end tests (added by the
// e2e engineer): REDMS_TEST_CRASH_AFTER_COMMIT=n makes the process exit with
// code 137, as SIGKILL would, right after its n-th window committed in the
// warehouse and before that window is acked, so the window is delivered
// again. Unset or 0 is off; never set it in production.
const crashAfterCommitEnv = "REDMS_TEST_CRASH_AFTER_COMMIT"

// crashHook wraps the applier with the crash-after-commit hook when the
// environment asks for it.
func crashHook(next consume.Applier, log *slog.Logger) consume.Applier {
	n, err := strconv.ParseInt(os.Getenv(crashAfterCommitEnv), 10, 64)
	if err != nil || n <= 0 {
		return next
	}
	log.Warn("test hook armed: exiting after a window commit, before its ack", "env", crashAfterCommitEnv, "commits", n)
	return &crashAfterCommit{next: next, n: n, log: log}
}

type crashAfterCommit struct {
	next  consume.Applier
	n     int64
	count atomic.Int64
	log   *slog.Logger
}

var _ consume.Applier = (*crashAfterCommit)(nil)

// Apply applies the window; after the n-th success (the window's
// transaction has committed) the process exits before the caller acks.
func (c *crashAfterCommit) Apply(ctx context.Context, w apply.Window) (apply.Result, error) {
	res, err := c.next.Apply(ctx, w)
	if err == nil && c.count.Add(1) == c.n {
		c.log.Warn("test hook: exiting after a window commit, before its ack", "env", crashAfterCommitEnv, "commits", c.n)
		os.Exit(137)
	}
	return res, err
}

// warehousePool opens the warehouse connections under the replica's name
// (application_name, unless the URL sets one), so that the cluster's
// session and lock views say which replica holds a table's lock.
func warehousePool(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.WarehouseURL)
	if err != nil {
		return nil, fmt.Errorf("parse REDMS_WAREHOUSE_URL: %w", err)
	}
	if _, set := pc.ConnConfig.RuntimeParams["application_name"]; !set {
		pc.ConnConfig.RuntimeParams["application_name"] = "redms-loader " + cfg.ReplicaID
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open warehouse pool: %w", err)
	}
	return pool, nil
}
