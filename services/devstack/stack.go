package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redms/redms/pkg/natslocal"
	"github.com/redms/redms/pkg/pgcluster"
	"github.com/redms/redms/pkg/s3local"
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
	// WindowDuration of the loaders.
	WindowDuration time.Duration
	Log            *slog.Logger
}

// stack is a running local redms: Postgres (source and warehouse
// databases), NATS JetStream, an S3 server, and the services as processes.
type stack struct {
	opts stackOptions
	dir  string

	pg   *pgcluster.Cluster
	nats *natslocal.Server
	s3   *s3local.Server

	rsemu   *child
	capture *child
	loaders []*child

	// warehouseURL is what the loaders dial (rsemu or the warehouse database);
	// warehouseDBURL is the warehouse database itself.
	warehouseURL   string
	warehouseDBURL string
	rsemuAddr      string
	captureMetrics string
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
	s.warehouseURL = s.warehouseDBURL

	opts.Log.Info("starting nats jetstream")
	if s.nats, err = natslocal.Start(ctx, natslocal.Options{StoreDir: filepath.Join(dir, "nats")}); err != nil {
		return s, fmt.Errorf("start nats: %w", err)
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
	if err := s.startCapture(ctx); err != nil {
		return s, err
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

// env is the environment of a service process: devstack's own, less any
// REDMS_* setting of the caller's shell, plus vars.
func serviceEnv(vars ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REDMS_") {
			env = append(env, kv)
		}
	}
	return append(env, vars...)
}

func (s *stack) startRsemu(ctx context.Context) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	s.rsemuAddr = addr
	s.rsemu = &child{
		name: "redms-rsemu",
		path: filepath.Join(s.opts.BinDir, "redms-rsemu"),
		args: []string{
			"--listen", addr,
			"--postgres", s.warehouseDBURL,
			"--s3-endpoint", s.s3.Endpoint(),
			"--s3-region", s3local.Region,
			"--s3-access-key-id", s3local.AccessKeyID,
			"--s3-secret-access-key", s3local.SecretAccessKey,
		},
		env:     serviceEnv(),
		logPath: s.logPath("rsemu"),
	}
	s.opts.Log.Info("starting redms-rsemu", "addr", addr)
	if err := s.rsemu.start(); err != nil {
		return err
	}
	s.warehouseURL = "postgres://postgres@" + addr + "/" + warehouseDB + "?sslmode=disable"
	return waitFor(ctx, s.rsemu, 30*time.Second, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, s.warehouseURL)
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
}

func (s *stack) startCapture(ctx context.Context) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	s.captureMetrics = addr
	s.capture = &child{
		name: "redms-capture",
		path: filepath.Join(s.opts.BinDir, "redms-capture"),
		env: serviceEnv(
			"REDMS_SOURCE_URL="+s.pg.URL(sourceDB),
			"REDMS_NATS_URL="+s.nats.URL(),
			"REDMS_SLOT="+slotName,
			"REDMS_STREAM="+streamName,
			"REDMS_METRICS_ADDR="+addr,
			"REDMS_CONFIRM_EVERY=200ms",
			"REDMS_SLOT_LAG_EVERY=2s",
			"REDMS_SHUTDOWN_TIMEOUT=5s",
		),
		logPath: s.logPath("capture"),
	}
	s.opts.Log.Info("starting redms-capture", "metrics", addr)
	if err := s.capture.start(); err != nil {
		return err
	}
	return waitReady(ctx, s.capture, "http://"+addr+"/readyz", 60*time.Second)
}

func (s *stack) startLoader(n int) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	s.loaderMetrics = append(s.loaderMetrics, addr)
	dialect := "postgres"
	if s.opts.Warehouse == "redshift" {
		dialect = "redshift"
	}
	l := &child{
		name: fmt.Sprintf("redms-loader-%d", n),
		path: filepath.Join(s.opts.BinDir, "redms-loader"),
		env: serviceEnv(
			"REDMS_NATS_URL="+s.nats.URL(),
			"REDMS_STREAM="+streamName,
			fmt.Sprintf("REDMS_REPLICA_ID=devstack-%d", n),
			"REDMS_WAREHOUSE_URL="+s.warehouseURL,
			"REDMS_WAREHOUSE_DIALECT="+dialect,
			"REDMS_WINDOW_DURATION="+s.opts.WindowDuration.String(),
			"REDMS_LEASE_TTL=5s",
			"REDMS_RETRY_BACKOFF=200ms",
			"REDMS_SHUTDOWN_TIMEOUT=5s",
			"REDMS_S3_ENDPOINT="+s.s3.Endpoint(),
			"REDMS_S3_REGION="+s3local.Region,
			"REDMS_S3_BUCKET="+bucket,
			"REDMS_S3_ACCESS_KEY_ID="+s3local.AccessKeyID,
			"REDMS_S3_SECRET_ACCESS_KEY="+s3local.SecretAccessKey,
			"REDMS_METRICS_ADDR="+addr,
		),
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
	if s.capture != nil {
		cs = append(cs, s.capture)
	}
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
	if s.capture != nil {
		errs = append(errs, s.capture.stop(10*time.Second))
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

// waitReady polls url until it answers 200, the child exits or timeout passes.
func waitReady(ctx context.Context, c *child, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return waitFor(ctx, c, timeout, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	})
}

// waitFor retries check every 100ms until it succeeds, c exits, ctx ends or
// timeout passes.
func waitFor(ctx context.Context, c *child, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if !c.running() {
			return fmt.Errorf("%s exited before it was ready (%v); see %s:\n%s", c.name, c.err, c.logPath, tail(c.logPath, 15))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v; see %s", c.name, timeout, err, c.logPath)
		case <-tick.C:
		}
	}
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
