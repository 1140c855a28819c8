// Command redms-capture reads a logical replication slot (test_decoding) and
// publishes every change into the JetStream stream that is redms' WAL,
// confirming to Postgres only what JetStream has acknowledged. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only on REDMS_PPROF_ADDR
	"os"
	"runtime/debug"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/services/capture/internal/catalog"
	"github.com/redms/redms/services/capture/internal/change"
	"github.com/redms/redms/services/capture/internal/publish"
	"github.com/redms/redms/services/capture/internal/selection"
	"github.com/redms/redms/services/capture/internal/source"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// errBadInput marks a run that finished but skipped unparseable records.
var errBadInput = errors.New("some records could not be parsed")

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("redms-capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	useStdin := fs.Bool("stdin", false, "read pg_recvlogical -f - text from standard input instead of the slot")
	dry := fs.Bool("dry-run", false, "publish nothing; write one JSON object per change to standard output")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var cfg Config
	if err := envconfig.Process("REDMS", &cfg); err != nil {
		fmt.Fprintln(stderr, "redms-capture: read configuration:", err)
		return 2
	}
	if err := cfg.Validate(*useStdin); err != nil {
		fmt.Fprintln(stderr, "redms-capture: invalid configuration:", err)
		return 2
	}
	log, err := service.NewLogger(stderr, cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(stderr, "redms-capture: REDMS_LOG_LEVEL:", err)
		return 2
	}
	flushSentry, err := service.InitSentry(cfg.SentryDSN, version(), map[string]string{"service": "redms-capture", "slot": cfg.Slot})
	if err != nil {
		fmt.Fprintln(stderr, "redms-capture: REDMS_SENTRY_DSN:", err)
		return 2
	}
	defer flushSentry()
	// A panic on this goroutine reaches Sentry before the process dies.
	defer func() {
		if r := recover(); r != nil {
			service.ReportPanic(r)
			flushSentry()
			panic(r)
		}
	}()
	log = slog.New(service.SentryHandler(log.Handler())).With("service", "redms-capture")

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Error("create cpu profile", "err", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Error("start cpu profile", "err", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	tuneGC()

	ctx, stop := service.SignalContext(context.Background())
	defer stop()

	app := &app{cfg: cfg, log: log, dry: *dry, stdout: stdout, stderr: stderr}
	err = app.run(ctx, *useStdin, stdin)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil // stopped by a signal before everything was up
	}
	switch {
	case errors.Is(err, errBadInput):
		log.Error("finished with errors", "err", err)
		return 1
	case err != nil:
		log.Error("stopped", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// version is the module version the binary was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return "unknown"
}

// tuneGC trades memory for CPU unless GOGC or GOMEMLIMIT say otherwise: the
// live heap is small and bounded (messages in flight, a few transactions),
// so collecting at 4x the live heap, capped by a 160 MiB soft limit, keeps
// GC work per change low without letting the heap grow unbounded.
func tuneGC() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(400)
		debug.SetMemoryLimit(160 << 20)
	}
}

type app struct {
	cfg            Config
	log            *slog.Logger
	dry            bool
	stdout, stderr io.Writer
	m              *metrics
	health         service.Health
	srcReady       atomic.Bool
	nc             atomic.Pointer[nats.Conn] // set once connected; read by NATS callbacks
}

// updateReady sets /readyz: the slot (or stdin) is being read and, unless
// this is a dry run, NATS is connected.
func (a *app) updateReady() {
	nc := a.nc.Load()
	ready := a.srcReady.Load() && (a.dry || (nc != nil && nc.IsConnected()))
	a.health.SetReady(ready)
	if ready {
		a.m.ready.Set(1)
	} else {
		a.m.ready.Set(0)
	}
}

// sink consumes batches: the JetStream publisher or the dry-run writer.
type sink interface {
	Run(ctx context.Context, in <-chan publish.Batch) error
}

var (
	_ sink = (*publish.Publisher)(nil)
	_ sink = (*dryRun)(nil)
)

func (a *app) run(ctx context.Context, useStdin bool, stdin io.Reader) error {
	reg := service.NewRegistry()
	a.m = newMetrics(reg)

	// In --stdin mode the run ends when the input is published: done then
	// stops the HTTP server too.
	ctx, done := context.WithCancel(ctx)
	defer done()
	g, gctx := errgroup.WithContext(ctx)
	if a.cfg.MetricsAddr != "" {
		srv := service.NewServer(a.cfg.MetricsAddr, reg, &a.health)
		g.Go(func() error { return service.Serve(gctx, srv, 5*time.Second) })
	}
	if a.cfg.PprofAddr != "" {
		srv := &http.Server{Addr: a.cfg.PprofAddr, Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error { return service.Serve(gctx, srv, 5*time.Second) })
	}

	keys, _ := catalog.ParseTableKeys(a.cfg.TableKeys) // validated
	filter, _ := selection.NewFilter(a.cfg.IncludeTables, a.cfg.ExcludeTables)
	suffix, _ := selection.NewSuffix(a.cfg.PartitionSuffixRegexp)
	builder := &change.Builder{
		Filter: filter, Suffix: suffix, MaxTxnChanges: a.cfg.TxnBuffer, Log: a.log,
		Metrics: change.Metrics{
			Excluded:     func(t string) { a.m.excluded.WithLabelValues(t).Inc() },
			Transactions: a.m.transactions.Inc,
		},
	}

	var pool *pgxpool.Pool
	if useStdin {
		builder.DB = a.cfg.Database
		if builder.DB == "" {
			builder.DB = "stdin"
		}
		builder.Resolver = catalog.Static{Keys: keys}
		a.srcReady.Store(true)
		a.updateReady()
	} else {
		var err error
		pool, err = pgxpool.New(ctx, a.cfg.SourceURL)
		if err != nil {
			return fmt.Errorf("open source pool: %w", err)
		}
		defer pool.Close()
		builder.Resolver = catalog.Live{Q: pool, Keys: keys}
		builder.DB = a.cfg.Database
		if builder.DB == "" {
			if builder.DB, err = retry(gctx, a.log, "read current database", func(ctx context.Context) (string, error) {
				var db string
				err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&db)
				return db, err
			}); err != nil {
				return err
			}
		}
	}

	var (
		snk   sink
		acked = func() uint64 { return 0 }
	)
	if a.dry {
		snk = newDryRun(a.stdout)
	} else {
		js, err := a.connectNATS(gctx)
		if err != nil {
			return err
		}
		defer a.nc.Load().Close()
		pub := publish.New(js, a.cfg.MaxInflight, 0, a.log, publish.Metrics{
			Published: a.m.onPublished,
			Retry:     a.m.retries.Inc,
			Inflight:  a.m.setInflight,
		})
		snk, acked = pub, pub.Confirmed
	}

	batches := make(chan publish.Batch, 4)
	sinkCtx, sinkCancel := context.WithCancel(context.Background())
	defer sinkCancel()
	drained := make(chan struct{})
	g.Go(func() error {
		defer close(drained)
		if useStdin {
			defer done()
		}
		err := snk.Run(sinkCtx, batches)
		if err != nil && sinkCtx.Err() != nil {
			a.log.Warn("shutdown deadline passed before every publish was acknowledged; the slot re-sends them", "timeout", a.cfg.ShutdownTimeout)
			return nil
		}
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		select {
		case <-gctx.Done():
		case <-drained:
			return nil
		}
		t := time.NewTimer(a.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			sinkCancel()
		case <-drained:
		}
		return nil
	})

	if useStdin {
		g.Go(func() error { return a.readStdin(gctx, stdin, builder, batches) })
		return g.Wait()
	}

	src := source.New(source.Config{URL: a.cfg.SourceURL, Slot: a.cfg.Slot, ConfirmEvery: a.cfg.ConfirmEvery, DryRun: a.dry},
		a.log, builder, acked, source.Metrics{
			Confirmed: func(l uint64) { a.m.confirmed.Set(float64(l)) },
			Unparsed:  a.m.unparsed.Inc,
			Ready: func(r bool) {
				a.srcReady.Store(r)
				a.updateReady()
			},
		})
	g.Go(func() error { return src.Run(gctx, batches, drained) })
	g.Go(func() error { return a.pollSlotLag(gctx, pool) })
	return g.Wait()
}
