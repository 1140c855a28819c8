// Command redms-devstack runs redms on one machine with nothing but this
// repository's binaries and the Postgres server binaries: an ephemeral
// Postgres (source and warehouse databases, wal_level=logical), embedded NATS
// JetStream, an S3-compatible server, optionally redms-rsemu in front of the
// warehouse, then redms-capture and two redms-loader replicas as child
// processes (found next to this executable).
//
//	redms-devstack demo [--duration 30s] [--seed N] [--warehouse postgres|redshift]
//	redms-devstack up --env-file PATH [--warehouse postgres|redshift]
//
// demo runs a seeded workload with a live progress line, waits for the
// warehouse to catch up, compares source and warehouse row by row and exits 0
// only when they match. up keeps the stack running, prints its URLs and
// writes PATH (KEY=value lines) once every service is ready, until Ctrl-C or
// SIGTERM. Either way everything stops on exit: children get SIGTERM, then
// SIGKILL; they also die with devstack if it is killed (Pdeathsig), and a
// killed devstack's directory is removed by the next one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/redms/redms/pkg/service"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "redms-devstack:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage:
  redms-devstack demo [--duration 30s] [--seed N] [--warehouse postgres|redshift]
  redms-devstack up --env-file PATH [--warehouse postgres|redshift] [--loaders N] [--nats-nodes 1|3] [--captures N]`

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("no command")
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("redms-devstack "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	warehouse := fs.String("warehouse", "postgres", "warehouse: postgres, or redshift (redms-rsemu in front of Postgres)")
	binDir := fs.String("bin-dir", "", "directory of redms-capture, redms-loader, redms-rsemu (default: this executable's)")
	logLevel := fs.String("log-level", "info", "devstack's own log level (the services log to files under the stack dir)")
	loaders := fs.Int("loaders", 2, "loader replicas")
	natsNodes := fs.Int("nats-nodes", 1, "NATS servers: 1, or 3 for a JetStream cluster (stream and buckets with 3 replicas)")
	captures := fs.Int("captures", 1, "captures on the slot: the first streams, the others stand by and take over when it ends")
	var envFile string
	demo := demoOptions{}
	switch cmd {
	case "up":
		fs.StringVar(&envFile, "env-file", "", "write the stack's settings here (KEY=value) once every service is ready; required")
	case "demo":
		fs.DurationVar(&demo.Duration, "duration", 30*time.Second, "how long the workload runs")
		fs.Int64Var(&demo.Seed, "seed", 1, "workload seed (same seed, same statements)")
		fs.Float64Var(&demo.Rate, "rate", 20, "workload transactions per second")
		fs.DurationVar(&demo.CatchUpTimeout, "catch-up-timeout", 2*time.Minute, "how long to wait for the warehouse to catch up")
		fs.IntVar(&demo.Prefill, "prefill", 200000, "rows of public.backfill written before capture first starts (snapshotted before the workload; 0 = none)")
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *warehouse != "postgres" && *warehouse != "redshift" {
		return fmt.Errorf("--warehouse %q: want postgres or redshift", *warehouse)
	}
	if *natsNodes != 1 && *natsNodes != 3 {
		return fmt.Errorf("--nats-nodes %d: want 1 or 3", *natsNodes)
	}
	if *captures < 1 {
		return fmt.Errorf("--captures %d: want at least 1", *captures)
	}
	if cmd == "up" && envFile == "" {
		return errors.New("up needs --env-file PATH")
	}
	p, err := service.New(service.Options{Name: "redms-devstack", Log: stderr, Text: true},
		service.Settings{LogLevel: *logLevel, ShutdownTimeout: stopTimeout})
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	defer p.Close()
	log := p.Log
	if *binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable: %w", err)
		}
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		*binDir = filepath.Dir(exe)
	}

	opts := stackOptions{
		Warehouse:      *warehouse,
		BinDir:         *binDir,
		Loaders:        *loaders,
		NATSNodes:      *natsNodes,
		Captures:       *captures,
		WindowDuration: 2 * time.Second,
		PrefillRows:    demo.Prefill,
		Log:            log,
	}
	// A first signal stops the stack in order; a second kills devstack at
	// once (its children die with it through Pdeathsig).
	return p.Run(context.Background(), func(ctx context.Context) error {
		if cmd == "up" {
			return up(ctx, opts, envFile, stdout)
		}
		return runDemo(ctx, opts, demo, stdout)
	})
}

// stopTimeout bounds stopping the stack: the services one after the other
// (SIGTERM, then SIGKILL after 10 s each), then the servers.
const stopTimeout = 2 * time.Minute

// up runs the stack until ctx ends or a service exits.
func up(ctx context.Context, opts stackOptions, envFile string, stdout io.Writer) (err error) {
	if err := os.Remove(envFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove old env file: %w", err)
	}
	s, err := startStack(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		opts.Log.Info("stopping")
		_ = os.Remove(envFile)
		if err != nil {
			if kept, kerr := keepLogs(filepath.Join(s.dir, "logs")); kerr == nil {
				err = fmt.Errorf("%w (service logs kept in %s)", err, kept)
			}
		}
		err = errors.Join(err, s.close(context.Background()))
	}()
	vars := s.envVars()
	if err := writeFileAtomic(envFile, renderEnv(vars)); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "redms devstack is up:")
	for _, kv := range vars {
		fmt.Fprintf(stdout, "  %-32s %s\n", kv[0], kv[1])
	}
	fmt.Fprintf(stdout, "settings written to %s; service logs in %s/logs; Ctrl-C stops everything\n", envFile, s.dir)
	fmt.Fprintf(stdout, "try:\n  set -a; . %s; set +a\n  psql \"$REDMS_SOURCE_URL\"              # write here\n  psql \"$REDMS_DEVSTACK_WAREHOUSE_DB_URL\"  # read here a window later\n  nats --server \"$REDMS_NATS_URL\" stream report\n", envFile)
	return s.watch(ctx)
}
