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
	"os"
	"runtime/debug"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/services/capture/internal/batch"
	"github.com/redms/redms/services/capture/internal/catalog"
	"github.com/redms/redms/services/capture/internal/change"
	"github.com/redms/redms/services/capture/internal/publish"
	"github.com/redms/redms/services/capture/internal/slotrecord"
	"github.com/redms/redms/services/capture/internal/snapshot"
	"github.com/redms/redms/services/capture/internal/source"
	"github.com/redms/redms/services/capture/internal/stream"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// errBadInput marks a run that finished but skipped unparseable records.
var errBadInput = errors.New("some records could not be parsed")

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "snapshot" {
		return snapshotCmd(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("redms-capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	useStdin := fs.Bool("stdin", false, "read pg_recvlogical -f - text from standard input instead of the slot")
	dry := fs.Bool("dry-run", false, "publish nothing; write one JSON object per change to standard output")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := readConfig(*useStdin)
	if err != nil {
		fmt.Fprintln(stderr, "redms-capture:", err)
		return 2
	}
	p, err := service.New(service.Options{Name: "redms-capture", Version: version(), Tags: map[string]string{"slot": cfg.Slot}, Log: stderr}, cfg.Settings)
	if err != nil {
		fmt.Fprintln(stderr, "redms-capture:", err)
		return 2
	}
	defer p.Close()
	log := p.Log

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

	// In --stdin mode the run ends when the input is published.
	ctx, done := context.WithCancel(context.Background())
	defer done()
	a := &app{cfg: cfg, log: log, dry: *dry, stdout: stdout, stderr: stderr, m: newMetrics(p.Registry), health: p.Health}
	err = p.Run(ctx, func(ctx context.Context) error {
		if *useStdin {
			return a.runStdin(ctx, p, stdin, done)
		}
		return a.runSlot(ctx, p)
	})
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
	health         *service.Health
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

// sink consumes chunks of changes: the JetStream publisher or the dry-run
// writer.
type sink interface {
	Run(ctx context.Context, in <-chan batch.Chunk) error
}

var (
	_ sink = (*publish.Publisher)(nil)
	_ sink = (*dryRun)(nil)
)

const (
	// recheckKeyless: a table whose lookup found no key is looked up again
	// at its next transaction once this passed (a key added after loading:
	// pgbench -i, pg_restore).
	recheckKeyless = time.Second
	// recordEvery: how often the confirmed position is written to the
	// slot's record in KV (slotrecord).
	recordEvery = 10 * time.Second
)

// The data path: the slot (or stdin) → source → assembler (positions,
// headers from the table cache) → chunks of changes → publisher (batches
// per subject, prev; or the dry-run writer).

// tables is the table cache's configuration for database db.
func (a *app) tables(db string, r change.Resolver) change.TablesConfig {
	return change.TablesConfig{DB: db, Resolver: r, Filter: a.cfg.filter, Suffix: a.cfg.suffix, Log: a.log}
}

// assembler is the assembler's configuration.
func (a *app) assembler() change.AssemblerConfig {
	return change.AssemblerConfig{MaxTxnChanges: a.cfg.TxnBuffer, Log: a.log,
		Metrics: change.Metrics{
			Excluded:     func(t string) { a.m.excluded.WithLabelValues(t).Inc() },
			Transactions: a.m.transactions.Inc,
		},
	}
}

// runSlot reads the slot and publishes until ctx ends.
func (a *app) runSlot(ctx context.Context, p *service.Process) error {
	pool, err := pgxpool.New(ctx, a.cfg.SourceURL)
	if err != nil {
		return fmt.Errorf("open source pool: %w", err)
	}
	defer pool.Close()
	db := a.cfg.Database
	if db == "" {
		if err := a.retry(ctx, "read current database", func(ctx context.Context) error {
			return pool.QueryRow(ctx, "SELECT current_database()").Scan(&db)
		}); err != nil {
			return err
		}
	}
	out, err := a.startSink(ctx, p, nil)
	if err != nil {
		return err
	}
	defer a.closeNATS()
	var (
		evidence source.Evidence // nil in a dry run: nothing is recorded
		keeper   *slotrecord.Keeper
		spills   *slotrecord.Spills
	)
	if out.js != nil {
		var kv jetstream.KeyValue
		if err := a.retry(ctx, "open kv bucket "+slotrecord.Bucket, func(ctx context.Context) (err error) {
			kv, err = slotrecord.Open(ctx, out.js, a.cfg.StreamReplicas)
			return err
		}); err != nil {
			return err
		}
		keeper = slotrecord.NewKeeper(kv, a.cfg.Stream, db, a.cfg.Slot)
		evidence = keeper
		p.Go("slot record", func(ctx context.Context) error { return keeper.Run(ctx, recordEvery) })
		if err := a.retry(ctx, "read spilled transactions' bases", func(ctx context.Context) (err error) {
			spills, err = slotrecord.LoadSpills(ctx, kv, a.cfg.Stream, db, a.cfg.Slot)
			return err
		}); err != nil {
			return err
		}
	}
	live := catalog.Live{Q: pool, Keys: a.cfg.tableKeys}
	tables := a.tables(db, live)
	tables.RecheckKeyless = recheckKeyless
	asmCfg := a.assembler()
	if spills != nil {
		asmCfg.Spills = spills
	}
	srcCfg := source.Config{URL: a.cfg.SourceURL, Slot: a.cfg.Slot, ConfirmEvery: a.cfg.ConfirmEvery, DryRun: a.dry, SlotCreate: a.cfg.SlotCreate, StandbyRetry: a.cfg.StandbyRetry}
	if out.js != nil {
		coord := snapshot.NewCoordinator()
		asmCfg.Snapshots = coord
		runner, requests, err := a.snapshotRunner(ctx, out, pool, live, coord, db)
		if err != nil {
			return err
		}
		if a.cfg.Snapshot == SnapshotInitial {
			srcCfg.BeforeCreate = func(ctx context.Context) error { return a.requestInitial(ctx, pool, requests, db) }
		}
		p.Go("snapshots", runner.Run)
	}
	asm := change.NewAssembler(change.NewTables(tables), asmCfg)
	src := source.New(srcCfg,
		a.log, asm, evidence, out.acked, source.Metrics{
			Confirmed: func(l uint64) {
				a.m.confirmed.Set(float64(l))
				if keeper != nil {
					keeper.Confirmed(l)
				}
			},
			Unparsed: a.m.unparsed.Inc,
			Standby: func(s bool) {
				if s {
					a.m.standby.Set(1)
				} else {
					a.m.standby.Set(0)
				}
			},
			Ready: func(r bool) {
				a.srcReady.Store(r)
				a.updateReady()
			},
		})
	p.Go("slot lag poll", func(ctx context.Context) error { return a.pollSlotLag(ctx, pool) })
	// The source returns once the publisher has drained (or given up).
	err = src.Run(ctx, out.chunks, out.drained)
	if keeper != nil { // the last confirmed position, for a slot lost later
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if ferr := keeper.Flush(fctx); ferr != nil {
			a.log.Warn("record the last confirmed position", "err", ferr)
		}
	}
	return err
}

// runStdin publishes pg_recvlogical text from in, then ends the run (done).
func (a *app) runStdin(ctx context.Context, p *service.Process, in io.Reader, done func()) error {
	db := a.cfg.Database
	if db == "" {
		db = "stdin"
	}
	a.srcReady.Store(true)
	a.updateReady()
	out, err := a.startSink(ctx, p, done)
	if err != nil {
		return err
	}
	defer a.closeNATS()
	asmCfg := a.assembler()
	asmCfg.Numbering = change.PerInput
	asm := change.NewAssembler(change.NewTables(a.tables(db, catalog.Static{Keys: a.cfg.tableKeys})), asmCfg)
	err = a.readStdin(ctx, in, asm, out.chunks)
	<-out.drained
	return err
}

// sinkLoop is the running sink: it reads chunks until they are closed,
// closes drained when it is done, and acked is the position the publisher
// confirmed; js is its JetStream (nil in a dry run).
type sinkLoop struct {
	chunks  chan batch.Chunk
	drained chan struct{}
	acked   func() uint64
	js      jetstream.JetStream
}

// startSink connects the sink (JetStream, or the dry-run writer) and runs
// it as a loop. At a stop it has REDMS_SHUTDOWN_TIMEOUT to publish what it
// holds; once it is done onDone (when not nil) is called.
func (a *app) startSink(ctx context.Context, p *service.Process, onDone func()) (sinkLoop, error) {
	out := sinkLoop{chunks: make(chan batch.Chunk, 4), drained: make(chan struct{}), acked: func() uint64 { return 0 }}
	var snk sink
	if a.dry {
		snk = newDryRun(a.stdout)
	} else {
		js, streamMax, err := a.connectNATS(ctx)
		if err != nil {
			return out, err
		}
		inflightBytes := stream.InflightBytes(a.cfg.MaxInflightBytes, streamMax)
		if inflightBytes < a.cfg.MaxInflightBytes {
			a.log.Info("bytes in flight bounded by the stream's max bytes", "max_inflight_bytes", inflightBytes, "stream_max_bytes", streamMax)
		}
		out.js = js
		nc := a.nc.Load()
		if max := nc.MaxPayload(); int64(a.cfg.BatchBytes) > max {
			a.log.Warn("REDMS_BATCH_BYTES is above the server's max payload: batches close at the max payload", "batch_bytes", a.cfg.BatchBytes, "max_payload", max)
		}
		pub := publish.New(js, publish.Config{
			MaxInflight:      a.cfg.MaxInflight,
			MaxInflightBytes: inflightBytes,
			Batch:            batch.Config{Bytes: a.cfg.BatchBytes, Records: a.cfg.BatchRecords, Linger: a.cfg.BatchLinger, MaxPayload: nc.MaxPayload},
			Unanswered:       a.moveServer,
		}, 0, a.log, publish.Metrics{
			Published: a.m.onPublished,
			Retry:     a.m.retries.Inc,
			Inflight:  a.m.setInflight,
		})
		snk, out.acked = pub, pub.Confirmed
	}
	// The sink's own context outlives the stop by the shutdown timeout.
	sinkCtx, sinkCancel := context.WithCancel(context.WithoutCancel(ctx))
	p.Go("publisher", func(context.Context) error {
		defer sinkCancel()
		defer close(out.drained)
		if onDone != nil {
			defer onDone()
		}
		err := snk.Run(sinkCtx, out.chunks)
		if err != nil && sinkCtx.Err() != nil {
			a.log.Warn("shutdown deadline passed before every publish was acknowledged; the slot re-sends them", "timeout", a.cfg.ShutdownTimeout)
			return nil
		}
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		return nil
	})
	p.Go("publish deadline", func(ctx context.Context) error {
		select {
		case <-ctx.Done():
		case <-out.drained:
			return nil
		}
		select {
		case <-time.After(a.cfg.ShutdownTimeout):
			sinkCancel()
		case <-out.drained:
		}
		return nil
	})
	return out, nil
}

// closeNATS closes the NATS connection, if there is one.
func (a *app) closeNATS() {
	if nc := a.nc.Load(); nc != nil {
		nc.Close()
	}
}
