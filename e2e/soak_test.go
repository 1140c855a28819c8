package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redms/redms/pkg/demo/verify"
	"github.com/redms/redms/pkg/demo/workload"
	"github.com/redms/redms/pkg/testinfra/pgcluster"
	"github.com/redms/redms/pkg/testinfra/stackenv"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/typemap"
)

// The soak's knobs. REDMS_SOAK_DURATION is how long faults are injected
// (default 2m: the run inside make test; make soak SOAK=10m); REDMS_SOAK_SEED
// replays a run: the same workload, the same faults in the same order with
// the same pauses (timing on a busy machine still differs).
const (
	soakDurationEnv = "REDMS_SOAK_DURATION"
	soakSeedEnv     = "REDMS_SOAK_SEED"
	// soakLeaseTTL is the loaders' lease TTL; pauses are drawn below and
	// above it.
	soakLeaseTTL = 3 * time.Second
	// soakStreamMaxBytes bounds the stream, so that it really fills up
	// (discard new) when loaders stop; the stream-full fault lowers it.
	soakStreamMaxBytes = 64 << 20
	// soakFullRun is the duration from which a run must inject 100 faults
	// (docs: make soak SOAK=20m).
	soakFullRun = 20 * time.Minute
)

// TestSoak runs capture, three loaders, NATS, Postgres (source and
// warehouse) and S3, each service link behind a TCP proxy, under the seeded
// workload plus pgbench, while a seeded injector picks a fault every few
// seconds (issue 9 §3): SIGKILL and restart of capture and of each loader,
// SIGSTOP/SIGCONT pauses shorter and longer than the lease TTL, a NATS
// restart, a Postgres fast restart, a cut or a stall of each link, S3
// answering 500 or stalling, the warehouse's connections terminated, and
// the stream full. At the end the warehouse must equal the source row by
// row. It logs the faults by kind (each counted only when it touched
// something: the process was running, the proxy had connections, S3 got a
// request, capture met the full stream) and the seed.
func TestSoak(t *testing.T) {
	ctx := context.Background()
	seed, duration := soakSettings(t)
	t.Logf("soak seed %d, faults for %v (replay with %s=%d %s=%v)", seed, duration, soakSeedEnv, seed, soakDurationEnv, duration)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("SOAK FAILED: replay this run with\n    make soak SOAK=%v %s=%d\nor  cd e2e && %s=%d %s=%v go test -race -count=1 -v -timeout 90m -run 'TestSoak$' .",
				duration, soakSeedEnv, seed, soakSeedEnv, seed, soakDurationEnv, duration)
		}
	})
	s := newStack(t, "postgres")
	l := s.proxyLinks(t)

	s.loaderEnv = append(s.loaderEnv, "REDMS_LEASE_TTL="+soakLeaseTTL.String())
	s.startCapture(t, slot, "REDMS_NATS_URL="+l.captureNATSURL, fmt.Sprintf("REDMS_STREAM_MAX_BYTES=%d", soakStreamMaxBytes))
	s.startLoaders(t, 3)

	trace, err := os.Create(filepath.Join(s.logDir, "workload.log"))
	if err != nil {
		t.Fatalf("create workload trace: %v", err)
	}
	defer trace.Close()
	gen := workload.New(seed, workload.Config{
		Trace: trace, Rate: 8, StatementsPerTx: 4, InitialRows: 10, Partitioned: true, Logger: testLogger(t),
	})
	if err := gen.Setup(ctx, s.source); err != nil {
		t.Fatalf("workload setup: %v", err)
	}
	bench := s.pgbench(t)
	if out, err := bench(ctx, "-i", "-I", "dtpg", "-s", "1"); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	s.createMarker(t)

	// Held for writing while Postgres restarts: no workload or pgbench
	// transaction is open then (they are the source's writers, not the
	// pipeline under test).
	var writers sync.RWMutex
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	type result struct {
		stats workload.Stats
		err   error
	}
	done := make(chan result, 1)
	go func() {
		st, err := gen.Run(runCtx, s.source, duration, workload.WithLock(writers.RLocker()))
		done <- result{st, err}
	}()
	var benchWG sync.WaitGroup
	var benchMu sync.Mutex
	var benchRuns int
	var benchErrs []string
	benchWG.Add(1)
	go func() {
		defer benchWG.Done()
		for runCtx.Err() == nil {
			writers.RLock()
			out, err := bench(runCtx, "-n", "-c", "2", "-j", "1", "-R", "60", "-T", "5")
			writers.RUnlock()
			benchMu.Lock()
			benchRuns++
			if err != nil && runCtx.Err() == nil {
				benchErrs = append(benchErrs, fmt.Sprintf("%v: %s", err, lastLines(out, 5)))
			}
			benchMu.Unlock()
		}
	}()

	inj := &injector{s: s, l: l, rnd: rand.New(rand.NewPCG(uint64(seed), 9)), writers: &writers, counts: map[string]*faultCount{}}
	t.Cleanup(inj.undo) // a test failing mid-fault leaves nothing paused or cut
	start := time.Now()
	var res result
	for finished := false; !finished; {
		select {
		case res = <-done:
			finished = true
			continue
		default:
		}
		inj.next(t)
		s.reviveCrashed(t)
		time.Sleep(jitter(inj.rnd, time.Second, 4*time.Second))
	}
	t.Logf("faults done after %.0fs", time.Since(start).Seconds())
	cancelRun()
	benchWG.Wait()
	if res.err != nil {
		t.Fatalf("workload: %v", res.err)
	}
	benchMu.Lock()
	t.Logf("workload: %d transactions; pgbench: %d runs of 5s at 60 tps", res.stats.Transactions, benchRuns)
	for _, e := range benchErrs {
		t.Errorf("pgbench failed: %s", e)
	}
	benchMu.Unlock()

	s.reviveCrashed(t)
	markerLSN := s.writeMarker(t, 1)
	s.waitCaughtUp(t, slot, markerLSN, 5*time.Minute)
	rep, err := verify.Compare(ctx, s.source, s.warehouse, verify.Options{Dialect: typemap.Postgres, MaxDiffs: 5})
	if err != nil {
		t.Fatalf("compare source and warehouse: %v", err)
	}
	t.Logf("rows compared per table:\n%s", rep.Summary())
	for _, d := range rep.Diffs {
		t.Errorf("DIFFERENCE: %s", d)
	}

	table, total := inj.table()
	t.Logf("faults injected (seed %d, %v):\n%s", seed, duration, table)
	if duration >= soakFullRun && total < 100 {
		t.Errorf("a full soak (%v) injected %d faults, want at least 100", duration, total)
	}
	for _, k := range faultKinds {
		if c := inj.counts[k]; duration >= time.Duration(len(faultKinds))*8*time.Second && (c == nil || c.happened == 0) {
			t.Errorf("fault %q never happened in %v", k, duration)
		}
	}
	for _, p := range s.procs() {
		p.stop(t)
	}
	for _, p := range s.procs() {
		for _, e := range p.unexpected() {
			t.Errorf("service crash: %s\n%s", e, p.tail(20))
		}
	}
}

func soakSettings(t *testing.T) (int64, time.Duration) {
	seed := time.Now().UnixNano() % 1_000_000
	if v := os.Getenv(soakSeedEnv); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", soakSeedEnv, v, err)
		}
		seed = n
	}
	d := 2 * time.Minute
	if v := os.Getenv(soakDurationEnv); v != "" {
		n, err := time.ParseDuration(v)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive Go duration (%v)", soakDurationEnv, v, err)
		}
		d = n
	}
	return seed, d
}

// links are the proxies between the services and the servers.
type links struct {
	source, captureNATS, loaderNATS, warehouse, s3 *testenv.Proxy
	captureNATSURL                                 string
}

func (l *links) byName() map[string]*testenv.Proxy {
	return map[string]*testenv.Proxy{
		"capture-postgres": l.source, "capture-nats": l.captureNATS,
		"loaders-nats": l.loaderNATS, "loaders-warehouse": l.warehouse, "loaders-s3": l.s3,
	}
}

// proxyLinks puts a proxy on every link the services dial: capture to the
// source and to NATS, the loaders to NATS, the warehouse and S3.
func (s *stack) proxyLinks(t *testing.T) *links {
	l := &links{
		source:      testenv.StartProxy(t, s.pg.Addr()),
		captureNATS: testenv.StartProxy(t, s.nats.Addr()),
		loaderNATS:  testenv.StartProxy(t, s.nats.Addr()),
		warehouse:   testenv.StartProxy(t, s.pg.Addr()),
		s3:          testenv.StartProxy(t, strings.TrimPrefix(s.s3.Endpoint(), "http://")),
	}
	l.captureNATSURL = strings.Replace(s.nats.URL(), s.nats.Addr(), l.captureNATS.Addr(), 1)
	s.links = func(st stackenv.Stack) stackenv.Stack {
		st.SourceURL = strings.Replace(st.SourceURL, s.pg.Addr(), l.source.Addr(), 1)
		st.NATSURL = strings.Replace(st.NATSURL, s.nats.Addr(), l.loaderNATS.Addr(), 1)
		st.WarehouseURL = strings.Replace(st.WarehouseURL, s.pg.Addr(), l.warehouse.Addr(), 1)
		st.S3.Endpoint = strings.Replace(st.S3.Endpoint, strings.TrimPrefix(s.s3.Endpoint(), "http://"), l.s3.Addr(), 1)
		return st
	}
	return l
}

// pgbench returns a runner of pgbench against the source database.
func (s *stack) pgbench(t testing.TB) func(ctx context.Context, args ...string) (string, error) {
	bin := filepath.Join(s.pg.BinDir(), "pgbench")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("pgbench is needed beside the Postgres server binaries (apt-get install postgresql-15): %v", err)
	}
	return func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, append(args, "-h", s.pg.Host(), "-p", fmt.Sprint(s.pg.Port()), "-U", pgcluster.Superuser, sourceDB)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

// reviveCrashed restarts every service that exited by itself (the crash is
// reported at the end) so the soak goes on.
func (s *stack) reviveCrashed(t *testing.T) {
	for _, p := range s.procs() {
		if !p.running() {
			t.Errorf("%s is not running (it exited by itself); restarting it:\n%s", p.name, p.tail(20))
		}
	}
	s.restartDead(t)
}

// faultKinds are the faults the injector picks from, each once per round
// in a seeded order.
var faultKinds = []string{
	"sigkill capture", "sigkill loader-0", "sigkill loader-1", "sigkill loader-2",
	"pause shorter than lease", "pause longer than lease",
	"nats restart", "postgres fast restart",
	"cut capture-postgres", "cut capture-nats", "cut loaders-nats", "cut loaders-warehouse", "cut loaders-s3",
	"stall link", "s3 500", "s3 stall", "warehouse connections terminated", "stream full",
}

type faultCount struct{ tried, happened int }

// injector injects one fault at a time.
type injector struct {
	s       *stack
	l       *links
	rnd     *rand.Rand
	writers *sync.RWMutex
	bag     []string
	counts  map[string]*faultCount
	// undos revert the fault under way when a failing test cuts it short.
	undoMu sync.Mutex
	undos  []func()
}

func (in *injector) onUndo(f func()) {
	in.undoMu.Lock()
	defer in.undoMu.Unlock()
	in.undos = append(in.undos, f)
}

func (in *injector) undo() {
	in.undoMu.Lock()
	defer in.undoMu.Unlock()
	for _, f := range in.undos {
		f()
	}
	in.undos = nil
}

func (in *injector) next(t *testing.T) {
	if len(in.bag) == 0 {
		in.bag = append([]string(nil), faultKinds...)
		in.rnd.Shuffle(len(in.bag), func(i, j int) { in.bag[i], in.bag[j] = in.bag[j], in.bag[i] })
	}
	kind := in.bag[0]
	in.bag = in.bag[1:]
	c := in.counts[kind]
	if c == nil {
		c = &faultCount{}
		in.counts[kind] = c
	}
	c.tried++
	desc, happened := in.inject(t, kind)
	in.undoMu.Lock()
	in.undos = nil // the fault ended: nothing to revert
	in.undoMu.Unlock()
	if happened {
		c.happened++
		t.Logf("FAULT %d %s: %s", in.total(), kind, desc)
	} else {
		t.Logf("fault %s did not happen: %s", kind, desc)
	}
}

func (in *injector) total() int {
	n := 0
	for _, c := range in.counts {
		n += c.happened
	}
	return n
}

// table is the fault counts by kind, and their total.
func (in *injector) table() (string, int) {
	var b strings.Builder
	fmt.Fprintf(&b, "    %-34s %8s %8s\n", "fault", "injected", "skipped")
	kinds := append([]string(nil), faultKinds...)
	sort.Strings(kinds)
	total := 0
	for _, k := range kinds {
		c := in.counts[k]
		if c == nil {
			c = &faultCount{}
		}
		total += c.happened
		fmt.Fprintf(&b, "    %-34s %8d %8d\n", k, c.happened, c.tried-c.happened)
	}
	fmt.Fprintf(&b, "    %-34s %8d", "total", total)
	return b.String(), total
}

// inject runs one fault to its end (the process restarted or resumed, the
// link restored) and says what it did and whether it touched anything.
func (in *injector) inject(t *testing.T, kind string) (string, bool) {
	s, rnd := in.s, in.rnd
	ctx := context.Background()
	switch {
	case strings.HasPrefix(kind, "sigkill "):
		p := s.capture
		if kind != "sigkill capture" {
			i, _ := strconv.Atoi(strings.TrimPrefix(kind, "sigkill loader-"))
			p = s.loaders[i]
		}
		wait := jitter(rnd, 200*time.Millisecond, 1500*time.Millisecond)
		if !p.running() {
			return p.name + " was not running", false
		}
		pid := p.pid()
		p.kill(t)
		time.Sleep(wait)
		if p == s.capture {
			p.start(t)
		} else {
			s.startLoader(t, p)
		}
		return fmt.Sprintf("SIGKILL %s (pid %d), restarted %.1fs later", p.name, pid, wait.Seconds()), true

	case strings.HasPrefix(kind, "pause "):
		procs := append([]*service{s.capture}, s.loaders...)
		p := procs[rnd.IntN(len(procs))]
		d := jitter(rnd, 500*time.Millisecond, soakLeaseTTL-500*time.Millisecond)
		if kind == "pause longer than lease" {
			p = s.loaders[rnd.IntN(len(s.loaders))]
			d = jitter(rnd, soakLeaseTTL+time.Second, soakLeaseTTL+5*time.Second)
		}
		cur := p.current()
		if cur == nil || !cur.Running() {
			return p.name + " was not running", false
		}
		if err := cur.Pause(); err != nil {
			return err.Error(), false
		}
		in.onUndo(func() { _ = cur.Resume() })
		time.Sleep(d)
		if err := cur.Resume(); err != nil {
			t.Errorf("SIGCONT %s: %v", p.name, err)
		}
		return fmt.Sprintf("SIGSTOP %s (pid %d) for %.1fs (lease TTL %v), then SIGCONT", p.name, cur.PID(), d.Seconds(), soakLeaseTTL), true

	case kind == "nats restart":
		d := jitter(rnd, 500*time.Millisecond, 3*time.Second)
		s.nats.Stop()
		time.Sleep(d)
		s.nats.Restart(t)
		return fmt.Sprintf("NATS down for %.1fs, restarted on the same port and store", d.Seconds()), true

	case kind == "postgres fast restart":
		waited := time.Now()
		in.writers.Lock()
		held := time.Since(waited)
		s.pg.Restart(t)
		// The test's own pools (the workload's among them) hold connections
		// the restart closed: dropped before the writers go on, or one
		// takes a dead connection first (57P01).
		s.source.Reset()
		s.warehouse.Reset()
		in.writers.Unlock()
		return fmt.Sprintf("pg_ctl restart -m fast (source and warehouse; the writers paused %.1fs to finish their transactions)", held.Seconds()), true

	case strings.HasPrefix(kind, "cut "):
		name := strings.TrimPrefix(kind, "cut ")
		p := in.l.byName()[name]
		d := jitter(rnd, 300*time.Millisecond, 3*time.Second)
		n := p.Cut()
		in.onUndo(p.Restore)
		time.Sleep(d)
		p.Restore()
		return fmt.Sprintf("cut %s: %d connection ends closed, new ones refused for %.1fs", name, n, d.Seconds()), n > 0

	case kind == "stall link":
		names := make([]string, 0, 5)
		for n := range in.l.byName() {
			names = append(names, n)
		}
		sort.Strings(names)
		name := names[rnd.IntN(len(names))]
		p := in.l.byName()[name]
		d := jitter(rnd, time.Second, 6*time.Second)
		n := p.Stall()
		in.onUndo(p.Unstall)
		time.Sleep(d)
		p.Unstall()
		return fmt.Sprintf("stall %s: bytes of %d connection ends held for %.1fs", name, n, d.Seconds()), n > 0

	case kind == "s3 500":
		d := jitter(rnd, 2*time.Second, 6*time.Second)
		before, _ := s.s3.Injected()
		s.s3.FailFor(d)
		in.onUndo(func() { s.s3.FailFor(0) })
		time.Sleep(d)
		after, _ := s.s3.Injected()
		return fmt.Sprintf("S3 answered 500 to %d requests in %.1fs", after-before, d.Seconds()), after > before

	case kind == "s3 stall":
		d := jitter(rnd, 2*time.Second, 8*time.Second)
		_, before := s.s3.Injected()
		s.s3.StallFor(d)
		in.onUndo(func() { s.s3.StallFor(0) })
		time.Sleep(d)
		_, after := s.s3.Injected()
		return fmt.Sprintf("S3 held %d requests for up to %.1fs", after-before, d.Seconds()), after > before

	case kind == "warehouse connections terminated":
		// Loaders hold warehouse connections while they apply: try for a
		// few seconds until some are there.
		n := 0
		var err error
		for deadline := time.Now().Add(5 * time.Second); n == 0 && err == nil && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			err = s.source.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE datname = $1 AND backend_type = 'client backend') x`, warehouseDB).Scan(&n)
		}
		s.warehouse.Reset()
		if err != nil {
			return fmt.Sprintf("pg_terminate_backend: %v", err), false
		}
		return fmt.Sprintf("pg_terminate_backend of %d warehouse connections", n), n > 0

	case kind == "stream full":
		return in.fillStream(t, jitter(rnd, 3*time.Second, 8*time.Second))
	}
	t.Fatalf("unknown fault %q", kind)
	return "", false
}

// fillStream lowers the stream's max bytes to what it holds for d, so
// every new message is refused (discard new), then restores it. It
// happened when capture met the refusal (its publish retries grew).
func (in *injector) fillStream(t *testing.T, d time.Duration) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := in.s
	st, err := s.js.Stream(ctx, streamName)
	if err != nil {
		return fmt.Sprintf("open stream: %v", err), false
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Sprintf("stream info: %v", err), false
	}
	retries := func() float64 {
		m, err := s.capture.metrics()
		if err != nil {
			return -1
		}
		return m.Sum("redms_capture_publish_retries_total")
	}
	before := retries()
	cfg := info.Config
	full := max(int64(info.State.Bytes), 1)
	cfg.MaxBytes = full
	if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Sprintf("lower max bytes: %v", err), false
	}
	restore := func() {
		cfg.MaxBytes = info.Config.MaxBytes
		for i := 0; ; i++ {
			rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := s.js.UpdateStream(rctx, cfg)
			cancel()
			if err == nil {
				return
			}
			if i == 20 {
				t.Errorf("restore the stream's max bytes to %d: %v", cfg.MaxBytes, err)
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	in.onUndo(restore)
	time.Sleep(d)
	after := retries()
	restore()
	return fmt.Sprintf("stream max bytes lowered to the %d it held for %.1fs (capture publish retries %v → %v)", full, d.Seconds(), before, after),
		before >= 0 && after > before
}
