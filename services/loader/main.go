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
	"net/http"
	_ "net/http/pprof" // served only on REDMS_PPROF_ADDR
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
	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/services/loader/internal/apply"
	"github.com/redms/redms/services/loader/internal/assign"
	"github.com/redms/redms/services/loader/internal/consume"
	"github.com/redms/redms/services/loader/internal/lease"
	"github.com/redms/redms/services/loader/internal/metrics"
	"github.com/redms/redms/services/loader/internal/park"
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
	var cfg Config
	if err := envconfig.Process("REDMS", &cfg); err != nil {
		fmt.Fprintln(stderr, "redms-loader: read configuration:", err)
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "redms-loader: invalid configuration:", err)
		return 2
	}
	if cfg.ReplicaID == "" {
		cfg.ReplicaID = defaultReplicaID()
	}
	log, err := service.NewLogger(stderr, cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(stderr, "redms-loader:", err)
		return 2
	}
	flush, err := service.InitSentry(cfg.SentryDSN, version, map[string]string{"service": "redms-loader", "replica": cfg.ReplicaID})
	if err != nil {
		fmt.Fprintln(stderr, "redms-loader:", err)
		return 2
	}
	defer flush()
	// A panic on this goroutine reaches Sentry before the process dies.
	defer func() {
		if r := recover(); r != nil {
			service.ReportPanic(r)
			flush()
			panic(r)
		}
	}()
	// Every Error line (a parked table, a lost lease) becomes a Sentry event.
	log = slog.New(service.SentryHandler(log.Handler())).With("service", "redms-loader", "replica", cfg.ReplicaID)
	if os.Getenv("GOMEMLIMIT") == "" {
		limit := memoryLimit(cfg.WindowBytes)
		debug.SetMemoryLimit(limit)
		log.Info("memory limit from the window size (set GOMEMLIMIT to override)", "limit_bytes", limit)
	}
	if err := loader(ctx, cfg, log); err != nil {
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

// loader runs the service until ctx ends.
func loader(ctx context.Context, cfg Config, log *slog.Logger) error {
	reg := service.NewRegistry()
	m := metrics.New(reg)
	var health service.Health

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
	pool, err := pgxpool.New(ctx, cfg.WarehouseURL)
	if err != nil {
		return fmt.Errorf("open warehouse pool: %w", err)
	}
	defer pool.Close()
	s3c, err := s3Client(ctx, cfg)
	if err != nil {
		return err
	}
	acfg, err := applyConfig(cfg)
	if err != nil {
		return err
	}
	applier, err := apply.New(acfg, pool, s3c, log)
	if err != nil {
		return fmt.Errorf("start applier: %w", err)
	}

	g, gctx := errgroup.WithContext(ctx)
	if cfg.PprofAddr != "" {
		// net/http/pprof registers on http.DefaultServeMux.
		srv := &http.Server{Addr: cfg.PprofAddr, Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error { return service.Serve(gctx, srv, time.Second) })
	}
	if cfg.MetricsAddr != "" {
		srv := service.NewServer(cfg.MetricsAddr, reg, &health)
		g.Go(func() error { return service.Serve(gctx, srv, 5*time.Second) })
	}
	g.Go(func() error {
		leases, parks, err := openBuckets(gctx, js, cfg, log)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		coord := assign.New(assign.Config{
			Stream:          cfg.Stream,
			ShutdownTimeout: cfg.ShutdownTimeout,
			Runner: consume.Config{
				Stream:     cfg.Stream,
				Replica:    cfg.ReplicaID,
				AckWait:    cfg.AckWait,
				Limits:     window.Limits{Duration: cfg.WindowDuration, Bytes: cfg.WindowBytes, Records: cfg.WindowRecords},
				Retries:    cfg.ApplyRetries,
				Backoff:    cfg.RetryBackoff,
				MaxBackoff: time.Minute,
				Idle:       5 * time.Second,
				PullBatch:  cfg.PullBatch,
				AckMode:    consume.AckMode(cfg.AckMode),
			},
		}, js, leases, parks, consume.Deps{JS: js, Applier: crashHook(applier, log), Parks: parks, Metrics: m, Log: log})
		g.Go(func() error { return readiness(gctx, &health, coord, nc) })
		log.Info("started", "stream", cfg.Stream, "lease_ttl", cfg.LeaseTTL.String(),
			"window_duration", cfg.WindowDuration.String(), "window_bytes", cfg.WindowBytes, "window_records", cfg.WindowRecords)
		return coord.Run(gctx)
	})
	return g.Wait()
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

// openBuckets opens the lease and parked buckets, waiting for NATS.
func openBuckets(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger) (*lease.Store, *park.Store, error) {
	delay := time.Second
	for {
		leases, err := lease.Open(ctx, js, cfg.ReplicaID, cfg.LeaseTTL)
		if err == nil {
			var parks *park.Store
			if parks, err = park.Open(ctx, js); err == nil {
				return leases, parks, nil
			}
		}
		log.Warn("open loader buckets; retrying", "err", err, "backoff", delay.String())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 30*time.Second)
	}
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

func applyConfig(cfg Config) (apply.Config, error) {
	keys, err := ParseTableKeys(cfg.TableKeys)
	if err != nil {
		return apply.Config{}, fmt.Errorf("REDMS_TABLE_KEYS: %w", err)
	}
	numeric, err := typemap.ParseNumeric(cfg.NumericDefault)
	if err != nil {
		return apply.Config{}, fmt.Errorf("REDMS_NUMERIC_DEFAULT: %w", err)
	}
	dialect, err := warehouseDialect(cfg.WarehouseDialect)
	if err != nil {
		return apply.Config{}, err
	}
	return apply.Config{
		Dialect:           dialect,
		TargetSchema:      cfg.TargetSchema,
		StateSchema:       cfg.StateSchema,
		TableKeys:         keys,
		NumericDefault:    numeric,
		S3Bucket:          cfg.S3Bucket,
		S3Prefix:          cfg.S3Prefix,
		PartBytes:         cfg.S3PartBytes,
		KeepObjects:       cfg.S3Keep,
		RedshiftIAMRole:   cfg.RedshiftIAMRole,
		S3AccessKeyID:     cfg.S3AccessKeyID,
		S3SecretAccessKey: cfg.S3SecretAccessKey,
		S3Region:          cfg.S3Region,
	}, nil
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
