package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redms/redms/pkg/testinfra/natslocal"
	"github.com/redms/redms/pkg/testinfra/pgcluster"
	"github.com/redms/redms/pkg/testinfra/s3local"
	"github.com/redms/redms/pkg/testinfra/stackenv"
)

const (
	sourceDB    = "shop"
	warehouseDB = "warehouse"
	bucket      = "redms-staging"
	slotName    = "redms"
	streamName  = "REDMS_WAL"
	// dirPrefix names every stack's directory under the temp dir.
	dirPrefix = "redms-devstack-"
	// pidFile in a stack's directory holds its devstack's pid, so a later
	// devstack can remove what a killed one left behind.
	pidFile = "devstack.pid"
)

// stackOptions configure a stack.
type stackOptions struct {
	// Warehouse is "postgres" or "redshift" (redms-rsemu in front of the
	// warehouse database).
	Warehouse string
	// BinDir holds redms-capture, redms-loader and redms-rsemu.
	BinDir string
	// Loaders is the number of loader replicas.
	Loaders int
	// NATSNodes is 1 (one server) or 3 (a JetStream cluster; the stream
	// and the buckets get 3 replicas).
	NATSNodes int
	// Captures is the number of captures on the slot: one streams, the
	// others stand by.
	Captures int
	// WindowDuration of the loaders.
	WindowDuration time.Duration
	// PrefillRows, when above 0, fills the source table public.backfill
	// with that many rows before capture first starts: its initial
	// snapshot brings them into the warehouse.
	PrefillRows int
	Log         *slog.Logger
}

// stack is a running local redms: Postgres (source and warehouse
// databases), NATS JetStream, an S3 server, and the services as processes.
type stack struct {
	opts stackOptions
	dir  string

	pg      *pgcluster.Cluster
	nats    *natslocal.Server  // NATSNodes 1
	cluster *natslocal.Cluster // NATSNodes 3
	natsURL string             // every server, comma-separated
	s3      *s3local.Server

	rsemu    *child
	captures []*child // the first streams once up, the others stand by
	loaders  []*child

	// warehouseURL is what the loaders dial (rsemu or the warehouse database);
	// warehouseDBURL is the warehouse database itself.
	warehouseURL   string
	warehouseDBURL string
	rsemuAddr      string
	captureMetrics string // the first capture's
	loaderMetrics  []string
}

// startStack starts every piece and waits until each is ready. On error
// what was started is stopped again.
func startStack(ctx context.Context, opts stackOptions) (s *stack, err error) {
	for _, name := range []string{"redms-capture", "redms-loader"} {
		if err := checkBinary(opts.BinDir, name); err != nil {
			return nil, err
		}
	}
	if opts.Warehouse == "redshift" {
		if err := checkBinary(opts.BinDir, "redms-rsemu"); err != nil {
			return nil, err
		}
	}
	removeStale(os.TempDir(), opts.Log)
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("create stack dir: %w", err)
	}
	// Postgres runs as the postgres user when devstack is root: it must be
	// able to reach its cluster directory inside this one.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chmod stack dir: %w", err)
	}
	opts.Log.Info("stack directory", "dir", dir)
	s = &stack{opts: opts, dir: dir}
	defer func() {
		if err != nil {
			s.close(context.WithoutCancel(ctx))
		}
	}()
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return s, fmt.Errorf("write pid file: %w", err)
	}
	for _, sub := range []string{"logs", "nats"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return s, fmt.Errorf("create %s dir: %w", sub, err)
		}
	}

	binDir, err := pgcluster.FindBinDir()
	if err != nil {
		return s, fmt.Errorf("%w (apt-get install postgresql)", err)
	}
	opts.Log.Info("starting postgres", "bin_dir", binDir)
	if s.pg, err = pgcluster.Start(ctx, pgcluster.Options{BinDir: binDir, Dir: filepath.Join(dir, "pg")}); err != nil {
		return s, fmt.Errorf("start postgres: %w", err)
	}
	if _, err := s.pg.CreateDatabase(ctx, sourceDB); err != nil {
		return s, err
	}
	if s.warehouseDBURL, err = s.pg.CreateDatabase(ctx, warehouseDB); err != nil {
		return s, err
	}
	if opts.PrefillRows > 0 {
		opts.Log.Info("filling the source before capture first starts", "table", prefillTable, "rows", opts.PrefillRows)
		if err := s.pg.Exec(ctx, sourceDB, PrefillSQL(opts.PrefillRows)); err != nil {
			return s, fmt.Errorf("fill %s: %w", prefillTable, err)
		}
	}
	s.warehouseURL = s.warehouseDBURL

	opts.Log.Info("starting nats jetstream", "nodes", opts.NATSNodes)
	if opts.NATSNodes > 1 {
		if s.cluster, err = natslocal.StartCluster(ctx, natslocal.ClusterOptions{Nodes: opts.NATSNodes, StoreDir: filepath.Join(dir, "nats")}); err != nil {
			return s, fmt.Errorf("start nats cluster: %w", err)
		}
		s.natsURL = s.cluster.URLs()
	} else {
		if s.nats, err = natslocal.Start(ctx, natslocal.Options{StoreDir: filepath.Join(dir, "nats")}); err != nil {
			return s, fmt.Errorf("start nats: %w", err)
		}
		s.natsURL = s.nats.URL()
	}
	opts.Log.Info("starting s3")
	if s.s3, err = s3local.Start(ctx, s3local.Options{Buckets: []string{bucket}}); err != nil {
		return s, fmt.Errorf("start s3: %w", err)
	}

	if opts.Warehouse == "redshift" {
		if err := s.startRsemu(ctx); err != nil {
			return s, err
		}
	}
	for i := range max(opts.Captures, 1) {
		if err := s.startCapture(ctx, i+1); err != nil {
			return s, err
		}
	}
	for i := range opts.Loaders {
		if err := s.startLoader(i + 1); err != nil {
			return s, err
		}
	}
	for i, l := range s.loaders {
		if err := waitReady(ctx, l, "http://"+s.loaderMetrics[i]+"/readyz", 60*time.Second); err != nil {
			return s, err
		}
	}
	return s, nil
}

func checkBinary(dir, name string) error {
	p := filepath.Join(dir, name)
	st, err := os.Stat(p)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("no executable %s next to redms-devstack (run `make build`, or pass --bin-dir)", p)
	}
	return nil
}

func (s *stack) logPath(name string) string { return filepath.Join(s.dir, "logs", name+".log") }

// local is where the services of this stack find each other.
func (s *stack) local() stackenv.Stack {
	dialect := "postgres"
	if s.opts.Warehouse == "redshift" {
		dialect = "redshift"
	}
	return stackenv.Stack{
		SourceURL: s.pg.URL(sourceDB), NATSURL: s.natsURL, Stream: streamName,
		WarehouseURL: s.warehouseURL, Dialect: dialect, Bucket: bucket,
		S3: stackenv.S3{Endpoint: s.s3.Endpoint(), Region: s3local.Region, AccessKeyID: s3local.AccessKeyID, SecretAccessKey: s3local.SecretAccessKey},
	}
}

func (s *stack) startRsemu(ctx context.Context) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	s.rsemuAddr = addr
	s.rsemu = &child{
		name:    "redms-rsemu",
		path:    filepath.Join(s.opts.BinDir, "redms-rsemu"),
		args:    s.local().RsemuArgs(addr, s.warehouseDBURL),
		env:     stackenv.Base(),
		logPath: s.logPath("rsemu"),
	}
	s.opts.Log.Info("starting redms-rsemu", "addr", addr)
	if err := s.rsemu.start(); err != nil {
		return err
	}
	s.warehouseURL = stackenv.RsemuURL(addr, warehouseDB)
	return waitFor(ctx, s.rsemu, 30*time.Second, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, s.warehouseURL)
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
}

// replicas is REDMS_STREAM_REPLICAS for the services: one per NATS node.
func (s *stack) replicas() string {
	return "REDMS_STREAM_REPLICAS=" + strconv.Itoa(max(s.opts.NATSNodes, 1))
}

// startCapture starts capture n (1-based). The first must become ready
// (it streams the slot); a later one stands by, so it must only be up
// (/healthz) while the first stays ready.
func (s *stack) startCapture(ctx context.Context, n int) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	name, logName := "redms-capture", "capture"
	if n > 1 {
		name, logName = fmt.Sprintf("redms-capture-%d", n), fmt.Sprintf("capture-%d", n)
	} else {
		s.captureMetrics = addr
	}
	c := &child{
		name:    name,
		path:    filepath.Join(s.opts.BinDir, "redms-capture"),
		env:     s.local().Capture(slotName, addr, s.replicas()),
		logPath: s.logPath(logName),
	}
	s.captures = append(s.captures, c)
	s.opts.Log.Info("starting "+name, "metrics", addr)
	if err := c.start(); err != nil {
		return err
	}
	if n == 1 {
		return waitReady(ctx, c, "http://"+addr+"/readyz", 60*time.Second)
	}
	return waitReady(ctx, c, "http://"+addr+"/healthz", 60*time.Second)
}

func (s *stack) startLoader(n int) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	s.loaderMetrics = append(s.loaderMetrics, addr)
	l := &child{
		name:    fmt.Sprintf("redms-loader-%d", n),
		path:    filepath.Join(s.opts.BinDir, "redms-loader"),
		env:     s.local().Loader(fmt.Sprintf("devstack-%d", n), s.opts.WindowDuration, addr, s.replicas()),
		logPath: s.logPath(fmt.Sprintf("loader-%d", n)),
	}
	s.loaders = append(s.loaders, l)
	s.opts.Log.Info("starting redms-loader", "replica", n, "metrics", addr)
	return l.start()
}

// children are the service processes, in start order.
func (s *stack) children() []*child {
	var cs []*child
	if s.rsemu != nil {
		cs = append(cs, s.rsemu)
	}
	cs = append(cs, s.captures...)
	return append(cs, s.loaders...)
}

// watch returns an error as soon as a service process exits, nil when ctx ends.
func (s *stack) watch(ctx context.Context) error {
	errs := make(chan error, len(s.children()))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, c := range s.children() {
		go func() { errs <- c.watch(ctx) }()
	}
	for range s.children() {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

// close stops everything: loaders, capture, rsemu (SIGTERM, then SIGKILL),
// then S3, NATS and Postgres, and removes the stack's directory.
func (s *stack) close(ctx context.Context) error {
	var errs []error
	// Loaders first (they hold leases), then capture, then rsemu.
	for i := len(s.loaders) - 1; i >= 0; i-- {
		errs = append(errs, s.loaders[i].stop(10*time.Second))
	}
	for i := len(s.captures) - 1; i >= 0; i-- { // standbys first: they must not take over
		errs = append(errs, s.captures[i].stop(10*time.Second))
	}
	if s.rsemu != nil {
		errs = append(errs, s.rsemu.stop(5*time.Second))
	}
	if s.s3 != nil {
		errs = append(errs, s.s3.Close(ctx))
	}
	if s.nats != nil {
		errs = append(errs, s.nats.Remove())
	}
	if s.cluster != nil {
		errs = append(errs, s.cluster.Remove())
	}
	if s.pg != nil {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		errs = append(errs, s.pg.Stop(stopCtx, pgcluster.Fast))
		cancel()
		if s.pg.Running() {
			errs = append(errs, s.pg.Remove(ctx))
		}
	}
	if s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove stack dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

// removeStale deletes the directories of stacks whose devstack no longer
// runs (killed with SIGKILL: its processes died with it, its files did not).
func removeStale(tmp string, log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, dirPrefix+"*"))
	for _, d := range dirs {
		raw, err := os.ReadFile(filepath.Join(d, pidFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || processAlive(pid) {
			continue
		}
		log.Info("removing the directory of a stopped devstack", "dir", d, "pid", pid)
		_ = os.RemoveAll(d)
	}
}

func processAlive(pid int) bool {
	_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
	return err == nil
}

// freeAddr asks the kernel for a free port on 127.0.0.1.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
