// Command redms-verify proves the warehouse equals the source
// (docs/DESIGN.md §8): per table it compares checksums of key-hash buckets
// computed by each database after the value rules, bisects the buckets
// that differ down to rows, and reports a difference only once the table's
// applied position has passed the source read. Exit 0 equal, 1 different,
// 2 could not compare. With --every it runs until stopped, exporting the
// last result per table as metrics. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/services/verify/internal/compare"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `usage: redms-verify [--json] [--repair | --every DURATION] [schema.table ...]

Compares the named tables (default: REDMS_VERIFY_TABLES, else every table of
the source) of REDMS_SOURCE_URL with REDMS_WAREHOUSE_URL. With --repair, the
rows that differ are snapshotted again (a request to the running
redms-capture through REDMS_NATS_URL), and once the warehouse applied them
the tables are compared again.
Exit status: 0 equal (after --repair: repaired), 1 different, 2 could not
compare (or the repair did not finish within REDMS_VERIFY_REPAIR_TIMEOUT).
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("redms-verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	asJSON := fs.Bool("json", false, "write the report as JSON on standard output")
	every := fs.Duration("every", 0, "run until stopped, comparing every DURATION, serving the results as metrics on REDMS_METRICS_ADDR")
	repair := fs.Bool("repair", false, "request a snapshot of what differs, wait until the warehouse applied it (REDMS_VERIFY_REPAIR_TIMEOUT), then compare those tables again")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *repair && *every > 0 {
		fmt.Fprintln(stderr, "redms-verify: --repair and --every do not go together")
		return 2
	}
	cfg, err := readConfig()
	if err != nil {
		fmt.Fprintln(stderr, "redms-verify:", err)
		return 2
	}
	if fs.NArg() > 0 {
		cfg.opts.Tables = parseTables(strings.Join(fs.Args(), ","))
	}
	if *every <= 0 {
		cfg.MetricsAddr = "" // one run: nothing scrapes it
	}
	p, err := service.New(service.Options{Name: "redms-verify", Version: version, Log: stderr, Text: *every <= 0}, cfg.Settings)
	if err != nil {
		fmt.Fprintln(stderr, "redms-verify:", err)
		return 2
	}
	defer p.Close()

	code := 2
	err = p.Run(ctx, func(ctx context.Context) error {
		src, err := pgxpool.New(ctx, cfg.SourceURL)
		if err != nil {
			return fmt.Errorf("connect to the source: %w", err)
		}
		defer src.Close()
		wh, err := pgxpool.New(ctx, cfg.WarehouseURL)
		if err != nil {
			return fmt.Errorf("connect to the warehouse: %w", err)
		}
		defer wh.Close()
		if *every <= 0 {
			opts := cfg.opts
			if f, ok := stderr.(*os.File); ok && !*asJSON {
				opts.Progress = progress(f)
			}
			var rep report
			if *repair {
				cfg.opts = opts
				rep, err = repairRun(ctx, p, cfg, src, wh)
			} else {
				rep.Report, err = compare.Compare(ctx, src, wh, opts)
			}
			if err != nil {
				return err
			}
			code = rep.ExitCode()
			if *asJSON {
				return writeJSON(stdout, rep)
			}
			return writeText(stdout, rep)
		}
		p.Health.SetReady(true)
		if err := periodic(ctx, p, src, wh, cfg.opts, *every); err != nil {
			return err
		}
		code = 0 // stopped
		return nil
	})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			p.Log.Error("stopped", "err", err)
		}
		return 2
	}
	return code
}

// periodic compares every interval until ctx ends; a failed run is logged
// and counted, never fatal.
func periodic(ctx context.Context, p *service.Process, src, wh *pgxpool.Pool, opts compare.Options, every time.Duration) error {
	m := newMetrics(p.Registry)
	beat := p.Health.Heartbeat("verify", 2*every+opts.ConfirmTimeout+10*time.Minute)
	defer beat.Stop()
	for {
		beat.Beat()
		start := time.Now()
		rep, err := compare.Compare(ctx, src, wh, opts)
		if ctx.Err() != nil {
			return nil
		}
		m.observe(rep, err, start)
		if err != nil {
			p.Log.Error("compare", "err", err)
		}
		for _, t := range rep.Tables {
			switch t.Status {
			case compare.Failed:
				p.Log.Error("could not compare", "table", t.Table, "err", t.Error)
			case compare.Different:
				p.Log.Warn("differences", "table", t.Table, "missing", t.Missing, "extra", t.Extra, "changed", t.Changed,
					"source_lsn", t.SourceLSN, "applied_pos", t.Applied, "confirmed", t.Confirmed)
			default:
				p.Log.Info("equal", "table", t.Table, "rows", t.SourceRows, "seconds", t.Seconds)
			}
		}
		if err := service.Sleep(ctx, every); err != nil {
			return nil
		}
	}
}
