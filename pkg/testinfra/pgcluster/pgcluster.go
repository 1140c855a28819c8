// Package pgcluster starts, stops and restarts an ephemeral PostgreSQL cluster
// from the machine's own server binaries (initdb, postgres).
//
// A cluster listens on 127.0.0.1 only, trusts every local connection (user
// "postgres"), has wal_level=logical with room for 20 replication slots and WAL
// senders, and trades durability for speed (fsync, full_page_writes and
// synchronous_commit are off): it is for tests and the local demo stack, never
// for data that matters. Because synchronous_commit is off, a committed
// change reaches logical decoding when the WAL writer flushes it, within
// about wal_writer_delay (10ms here), not at COMMIT: readers of a slot must
// wait for changes, not expect them the instant COMMIT returns.
//
// Postgres refuses to run as root. When the calling process is root, every
// server program runs as the OS user Options.RunAs (default "postgres"), and the
// cluster's directory is created under the system temp dir and chowned to that
// user.
//
// The server runs as a child of the calling process with a parent-death
// signal (Linux), so it dies with its parent. A Fast stop also terminates
// walsenders, which would otherwise hold the shutdown until a replication
// client confirms everything sent or wal_sender_timeout (60s) passes.
//
// The package imports no testing code; pkg/testenv wraps it for tests and
// redms-devstack uses it directly.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// startTimeout bounds the wait for a starting server to accept connections
// (crash recovery included).
const startTimeout = 2 * time.Minute

// Superuser is the cluster's superuser role; it needs no password.
const Superuser = "postgres"

// StopMode is how the server is stopped.
type StopMode string

// Stop modes, named as pg_ctl -m names them (the server gets the signal pg_ctl
// would send).
const (
	// Fast rolls back open transactions, disconnects clients and shuts down
	// cleanly (a checkpoint is written).
	Fast StopMode = "fast"
	// Immediate aborts every server process without a clean shutdown, as a
	// crash would; the next start runs crash recovery.
	Immediate StopMode = "immediate"
)

// Options configure a cluster. BinDir is required.
type Options struct {
	// BinDir holds initdb and postgres (see FindBinDir).
	BinDir string
	// Dir is the cluster's directory (data dir, log file). Empty: a new
	// directory under the system temp dir, removed by Remove. A Dir that
	// already holds an initialised cluster is reused.
	Dir string
	// Port to listen on at 127.0.0.1. Zero: a free port is chosen.
	Port int
	// RunAs is the OS user that runs the server when the calling process is
	// root. Empty means "postgres". Ignored when not root.
	RunAs string
	// Settings are extra postgresql.conf lines (name → value, written
	// verbatim, so quote strings yourself). They override the defaults.
	Settings map[string]string
}

// Cluster is one Postgres cluster started by this package.
type Cluster struct {
	binDir  string
	dir     string
	ownsDir bool
	port    int
	cred    *syscall.Credential
	uid     int
	gid     int

	mu   sync.Mutex
	proc *postmaster // nil while stopped
}

// postmaster is one run of the server process.
type postmaster struct {
	pid    int
	exited chan struct{} // closed when the process has exited
	err    error         // Wait's result, readable after exited is closed
}

// defaultSettings are the postgresql.conf lines every cluster gets.
func defaultSettings(port int) map[string]string {
	return map[string]string{
		"listen_addresses":        "'127.0.0.1'",
		"port":                    strconv.Itoa(port),
		"unix_socket_directories": "''",
		"wal_level":               "logical",
		"max_replication_slots":   "20",
		"max_wal_senders":         "20",
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"shared_buffers":          "128MB",
		"max_connections":         "200",
		"wal_sender_timeout":      "60s",
		// With synchronous_commit off a commit reaches logical decoding only
		// once the WAL writer flushes it; flush often so changes show quickly.
		"wal_writer_delay": "10ms",
	}
}

// FindBinDir returns the directory holding the Postgres server binaries: the
// newest /usr/lib/postgresql/<version>/bin, else `pg_config --bindir`, else the
// directory of `initdb` on PATH.
func FindBinDir() (string, error) {
	if dirs, err := filepath.Glob("/usr/lib/postgresql/*/bin"); err == nil && len(dirs) > 0 {
		sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
		for _, d := range dirs {
			if hasServer(d) {
				return d, nil
			}
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); hasServer(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if d := filepath.Dir(p); hasServer(d) {
			return d, nil
		}
	}
	return "", errors.New("find postgres server binaries: no initdb and postgres in /usr/lib/postgresql/*/bin, pg_config --bindir or PATH")
}

// versionOf extracts the major version from /usr/lib/postgresql/<v>/bin.
func versionOf(binDir string) int {
	v, err := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	if err != nil {
		return -1
	}
	return v
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.IsDir() {
			return false
		}
	}
	return true
}

// Start initialises the cluster (unless Options.Dir already holds one) and
// starts it, waiting until it accepts connections.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.BinDir == "" {
		return nil, errors.New("start postgres: Options.BinDir is empty (see FindBinDir)")
	}
	if !hasServer(opts.BinDir) {
		return nil, fmt.Errorf("start postgres: no initdb/postgres in %s", opts.BinDir)
	}
	c := &Cluster{binDir: opts.BinDir, dir: opts.Dir, uid: -1, gid: -1}
	if os.Geteuid() == 0 {
		name := opts.RunAs
		if name == "" {
			name = Superuser
		}
		u, err := user.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("look up OS user %q to run postgres as (running as root): %w", name, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.uid, c.gid = uid, gid
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: false}
	}
	if c.dir == "" {
		dir, err := os.MkdirTemp("", "redms-pg-")
		if err != nil {
			return nil, fmt.Errorf("create cluster dir: %w", err)
		}
		c.dir, c.ownsDir = dir, true
	} else if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create cluster dir: %w", err)
	}
	if c.cred != nil {
		if err := os.Chown(c.dir, c.uid, c.gid); err != nil {
			c.removeOwned()
			return nil, fmt.Errorf("chown cluster dir to postgres user: %w", err)
		}
	}
	if _, err := os.Stat(filepath.Join(c.DataDir(), "PG_VERSION")); err != nil {
		if err := c.initdb(ctx); err != nil {
			c.removeOwned()
			return nil, err
		}
	}
	// A chosen port may be taken between choosing and binding: try a few.
	attempts := 1
	if opts.Port == 0 {
		attempts = 3
	}
	var err error
	for range attempts {
		c.port = opts.Port
		if c.port == 0 {
			if c.port, err = freePort(); err != nil {
				c.removeOwned()
				return nil, err
			}
		}
		if err = c.writeConf(opts.Settings); err != nil {
			c.removeOwned()
			return nil, err
		}
		if err = c.Start(ctx); err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	c.removeOwned()
	return nil, err
}

func (c *Cluster) removeOwned() {
	if c.ownsDir {
		_ = os.RemoveAll(c.dir)
	}
}

// DataDir is the cluster's PGDATA.
func (c *Cluster) DataDir() string { return filepath.Join(c.dir, "data") }

// LogFile is the server's log (its standard output and error).
func (c *Cluster) LogFile() string { return filepath.Join(c.dir, "postgres.log") }

// Dir is the cluster's directory (data dir and log file).
func (c *Cluster) Dir() string { return c.dir }

// BinDir is the directory of the server binaries (pg_recvlogical, psql, ...).
func (c *Cluster) BinDir() string { return c.binDir }

// Port is the TCP port the cluster listens on at 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// Host is the address the cluster listens on.
func (c *Cluster) Host() string { return "127.0.0.1" }

// URL is a connection URL for database db as the superuser.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, c.port, db)
}

func (c *Cluster) initdb(ctx context.Context) error {
	_, err := c.run(ctx, "initdb", "-D", c.DataDir(), "-U", Superuser, "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	if err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	return nil
}

// writeConf writes the settings to postgresql.auto.conf-style include file
// that postgresql.conf includes, so repeated writes replace, not append.
func (c *Cluster) writeConf(extra map[string]string) error {
	settings := defaultSettings(c.port)
	for k, v := range extra {
		settings[k] = v
	}
	names := make([]string, 0, len(settings))
	for k := range settings {
		names = append(names, k)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString("# written by redms pgcluster; rewritten on every start\n")
	for _, k := range names {
		fmt.Fprintf(&b, "%s = %s\n", k, settings[k])
	}
	redms := filepath.Join(c.DataDir(), "redms.conf")
	if err := c.writeFile(redms, b.Bytes()); err != nil {
		return err
	}
	main := filepath.Join(c.DataDir(), "postgresql.conf")
	conf, err := os.ReadFile(main)
	if err != nil {
		return fmt.Errorf("read postgresql.conf: %w", err)
	}
	const include = "include 'redms.conf'\n"
	if !bytes.Contains(conf, []byte(include)) {
		conf = append(conf, '\n')
		conf = append(conf, include...)
		if err := c.writeFile(main, conf); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) writeFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if c.cred != nil {
		if err := os.Chown(path, c.uid, c.gid); err != nil {
			return fmt.Errorf("chown %s: %w", filepath.Base(path), err)
		}
	}
	return nil
}

// Start starts a stopped cluster on its port and data dir and waits until it
// accepts connections. Starting a running cluster is an error.
//
// The server runs as a child of this process (not daemonised by pg_ctl) with
// a parent-death signal, so a test binary killed by a timeout does not leave
// clusters running behind it.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return errors.New("start postgres: already running")
	}
	log, err := os.OpenFile(c.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open postgres log: %w", err)
	}
	defer log.Close() // the child has its own copy
	cmd := exec.Command(filepath.Join(c.binDir, "postgres"), "-D", c.DataDir())
	cmd.Dir = c.dir
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: c.cred,
		// Own process group: a terminal's Ctrl-C reaches the test, whose
		// death then stops the server through Pdeathsig.
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	p := &postmaster{exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that started the child exits:
		// keep this goroutine on its thread for the server's lifetime.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	if err := c.waitReady(ctx, p); err != nil {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		<-p.exited
		return fmt.Errorf("start postgres on port %d: %w (log %s: %s)", c.port, err, c.LogFile(), c.logTail())
	}
	c.proc = p
	return nil
}

// waitReady polls until the server accepts a connection, the process exits
// or ctx (at most startTimeout) ends.
func (c *Cluster) waitReady(ctx context.Context, p *postmaster) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgconn.Connect(cctx, c.URL("postgres"))
		ccancel()
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("server exited: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("not accepting connections: %w (last: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// Stop stops the server with mode and waits until it has exited; if ctx ends
// first the server is killed. Stopping a stopped cluster does nothing.
func (c *Cluster) Stop(ctx context.Context, mode StopMode) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.proc
	if p == nil {
		return nil
	}
	sig := syscall.SIGINT // fast
	switch mode {
	case Fast, "":
	case Immediate:
		sig = syscall.SIGQUIT
	default:
		return fmt.Errorf("stop postgres: unknown mode %q", mode)
	}
	c.proc = nil
	if err := syscall.Kill(p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop postgres (%s): signal %d: %w", mode, p.pid, err)
	}
	// In a fast shutdown each logical walsender waits for its client to
	// confirm everything sent, up to wal_sender_timeout (60s): a client that
	// holds back confirmation (capture while NATS is down) would stall the
	// stop. Terminate them, as an operator would; the slot keeps its
	// confirmed position. New connections are refused by now.
	if waitExited(ctx, p, sig == syscall.SIGINT) {
		return nil
	}
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	<-p.exited
	return fmt.Errorf("stop postgres (%s): killed after %w", mode, ctx.Err())
}

// Restart stops the server with mode (pg_ctl restart -m fast, or
// immediate) and starts it again on the same port and data. Clients are
// disconnected; replication slots keep their confirmed positions.
func (c *Cluster) Restart(ctx context.Context, mode StopMode) error {
	if err := c.Stop(ctx, mode); err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	if err := c.Start(ctx); err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	return nil
}

// PID is the server's (postmaster's) process id, 0 while stopped. Tests use
// it to kill the server as a crash would.
func (c *Cluster) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return 0
	}
	return c.proc.pid
}

// Running reports whether the cluster was started and not stopped since.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc != nil
}

// Remove stops the server immediately and, when this package created the
// cluster's directory, deletes it.
func (c *Cluster) Remove(ctx context.Context) error {
	err := c.Stop(ctx, Immediate)
	if c.ownsDir {
		if rmErr := os.RemoveAll(c.dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove cluster dir: %w", rmErr))
		}
	}
	return err
}

// Exec runs sql in database db over the simple protocol. Several statements
// separated by semicolons run in one implicit transaction.
func (c *Cluster) Exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", db, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("exec in %s: %w", db, err)
	}
	return nil
}

// CreateDatabase creates database name and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := c.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return c.URL(name), nil
}

// run runs a binary from BinDir as the server's OS user, in the cluster dir,
// with a clean PG* environment.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	cmd.Env = cleanEnv()
	cmd.WaitDelay = 5 * time.Second
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// cleanEnv is the environment without PG* variables (a PGPORT or PGDATA of
// the caller must not leak into the cluster) and with a C locale.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LANG=C", "LC_ALL=C")
}

func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.LogFile())
	if err != nil {
		return "(no log)"
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(bytes.TrimSpace(b))
}

// waitExited waits until p exits (true) or ctx ends (false), terminating
// walsenders every 50ms when terminateSenders is set.
func waitExited(ctx context.Context, p *postmaster, terminateSenders bool) bool {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.exited:
			return true
		case <-ctx.Done():
			return false
		case <-tick.C:
			if terminateSenders {
				terminateWalSenders(p.pid)
			}
		}
	}
}

// terminateWalSenders sends SIGTERM to every walsender child of the
// postmaster pid, found by its process title in /proc (Linux).
func terminateWalSenders(pid int) {
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(children)) {
		child, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		title, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child))
		if err == nil && bytes.HasPrefix(title, []byte("postgres: walsender")) {
			_ = syscall.Kill(child, syscall.SIGTERM)
		}
	}
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
