package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/testinfra/proc"
	"github.com/redms/redms/pkg/testinfra/testenv"
)

// devstackBin is redms-devstack, built by TestMain next to redms-capture,
// redms-loader and redms-verify, so that devstack finds the services next to itself as
// it does in bin/.
var devstackBin, captureBin, loaderBin, verifyBin string

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithBinaries(m,
		testenv.Binary{Name: "redms-devstack", Dir: ".", Path: &devstackBin},
		testenv.Binary{Name: "redms-capture", Dir: "../capture", Path: &captureBin},
		testenv.Binary{Name: "redms-loader", Dir: "../loader", Path: &loaderBin},
		testenv.Binary{Name: "redms-verify", Dir: "../verify", Path: &verifyBin}))
}

// upStack is one `redms-devstack up` process.
type upStack struct {
	*testenv.Process
	envFile string
	env     map[string]string
}

func startUp(t *testing.T, flags ...string) *upStack {
	t.Helper()
	u := &upStack{envFile: filepath.Join(t.TempDir(), "devstack.env")}
	u.Process = testenv.StartProcess(t, proc.Options{Name: "redms-devstack up", Path: devstackBin,
		Args: append([]string{"up", "--env-file", u.envFile}, flags...), Env: os.Environ()})
	var raw []byte
	testenv.Eventually(t, 3*time.Minute, "redms-devstack up to write "+u.envFile, func() bool {
		if !u.Running() {
			t.Fatalf("redms-devstack up exited before writing %s: %v\n%s", u.envFile, u.Err(), u.Log.String())
		}
		var err error
		raw, err = os.ReadFile(u.envFile)
		return err == nil
	})
	u.env = parseEnv(t, string(raw))
	return u
}

func parseEnv(t *testing.T, text string) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("env file line %q is not KEY=value", line)
		}
		env[k] = v
	}
	for _, need := range []string{"REDMS_SOURCE_URL", "REDMS_WAREHOUSE_URL", "REDMS_NATS_URL", "REDMS_S3_ENDPOINT",
		"REDMS_DEVSTACK_DIR", "REDMS_DEVSTACK_CAPTURE_METRICS", "REDMS_DEVSTACK_LOADER_METRICS"} {
		if env[need] == "" {
			t.Errorf("env file has no %s:\n%s", need, text)
		}
	}
	return env
}

// checkURLs asserts every service of the env file answers.
func (u *upStack) checkURLs(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, key := range []string{"REDMS_SOURCE_URL", "REDMS_WAREHOUSE_URL"} {
		conn, err := pgx.Connect(ctx, u.env[key])
		if err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Errorf("%s: SELECT 1: %v", key, err)
		}
		conn.Close(ctx)
	}
	nc, err := nats.Connect(u.env["REDMS_NATS_URL"])
	if err != nil {
		t.Errorf("REDMS_NATS_URL: %v", err)
	} else {
		js, _ := jetstream.New(nc)
		if _, err := js.Stream(ctx, "REDMS_WAL"); err != nil {
			t.Errorf("stream REDMS_WAL (capture creates it): %v", err)
		}
		nc.Close()
	}
	urls := []string{u.env["REDMS_S3_ENDPOINT"] + "/" + u.env["REDMS_S3_BUCKET"], u.env["REDMS_DEVSTACK_CAPTURE_METRICS"]}
	urls = append(urls, strings.Split(u.env["REDMS_DEVSTACK_LOADER_METRICS"], ",")...)
	for _, url := range urls {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("GET %s: %v", url, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", url, resp.Status)
		}
	}
}

// osProc identifies a process across pid reuse.
type osProc struct {
	pid   int
	start string // field 22 of /proc/pid/stat
	cmd   string
}

// procStat reads ppid, state and start time of pid.
func procStat(pid int) (ppid int, state, start string, ok bool) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, "", "", false
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, "", "", false
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0], f[19], true
}

func cmdline(pid int) string {
	raw, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return strings.TrimSpace(strings.ReplaceAll(string(raw), "\x00", " "))
}

func allPIDs() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stackProcs lists root's descendants and every process whose command line
// names one of marks (the stack dir, for Postgres), with their descendants.
// (The tests run in parallel from one bin dir, so the binaries' path would
// mark the other test's processes too.)
func stackProcs(root int, marks ...string) []osProc {
	parent := map[int]int{}
	start := map[int]string{}
	for _, pid := range allPIDs() {
		if pp, _, st, ok := procStat(pid); ok {
			parent[pid], start[pid] = pp, st
		}
	}
	in := map[int]bool{root: true}
	for pid := range parent {
		cl := cmdline(pid)
		for _, m := range marks {
			if m != "" && strings.Contains(cl, m) {
				in[pid] = true
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for pid, pp := range parent {
			if !in[pid] && in[pp] {
				in[pid], changed = true, true
			}
		}
	}
	var out []osProc
	for pid := range in {
		if pid != root && start[pid] != "" {
			out = append(out, osProc{pid: pid, start: start[pid], cmd: cmdline(pid)})
		}
	}
	return out
}

// alive reports whether p still runs (a zombie waiting for its reaper does
// not run).
func alive(p osProc) bool {
	_, state, start, ok := procStat(p.pid)
	return ok && start == p.start && state != "Z"
}

// waitGone waits until none of procs runs, and fails naming the survivors.
func waitGone(t *testing.T, procs []osProc, within time.Duration) {
	t.Helper()
	var left []string
	defer func() {
		if t.Failed() && len(left) > 0 {
			t.Logf("%d processes of the stack still run after devstack ended:\n%s", len(left), strings.Join(left, "\n"))
		}
	}()
	testenv.Eventually(t, within, "every process of the stack to end with devstack", func() bool {
		left = left[:0]
		for _, p := range procs {
			if alive(p) {
				left = append(left, fmt.Sprintf("%d %s", p.pid, p.cmd))
			}
		}
		return len(left) == 0
	})
}

func namesOf(procs []osProc) string {
	var s []string
	for _, p := range procs {
		s = append(s, p.cmd)
	}
	return strings.Join(s, "\n")
}

// TestUpThenSIGTERM runs `redms-devstack up --env-file` as a process, waits
// for the env file, checks that every URL in it answers, sends SIGTERM and
// asserts that devstack exits 0 leaving no process, env file or directory.
func TestUpThenSIGTERM(t *testing.T) {
	t.Parallel()
	u := startUp(t)
	u.checkURLs(t)
	procs := stackProcs(u.PID(), u.env["REDMS_DEVSTACK_DIR"])
	var sawPostgres, sawCapture, loaders int
	for _, p := range procs {
		switch {
		case strings.Contains(p.cmd, u.env["REDMS_DEVSTACK_DIR"]) && strings.Contains(p.cmd, "postgres"):
			sawPostgres++
		case strings.HasSuffix(p.cmd, "redms-capture"):
			sawCapture++
		case strings.HasSuffix(p.cmd, "redms-loader"):
			loaders++
		}
	}
	if sawPostgres == 0 || sawCapture != 1 || loaders != 2 {
		t.Fatalf("want postgres, one capture and two loaders among devstack's processes, got:\n%s", namesOf(procs))
	}

	if err := u.Stop(90 * time.Second); err != nil {
		t.Fatalf("redms-devstack exited with %v after SIGTERM\n%s", err, u.Log.String())
	}
	waitGone(t, procs, 10*time.Second)
	if left := stackProcs(-1, u.env["REDMS_DEVSTACK_DIR"]); len(left) > 0 {
		t.Errorf("processes naming the stack dir remain:\n%s", namesOf(left))
	}
	if _, err := os.Stat(u.env["REDMS_DEVSTACK_DIR"]); !os.IsNotExist(err) {
		t.Errorf("stack dir %s not removed: %v", u.env["REDMS_DEVSTACK_DIR"], err)
	}
	if _, err := os.Stat(u.envFile); !os.IsNotExist(err) {
		t.Errorf("env file %s not removed: %v", u.envFile, err)
	}
}

// TestSIGKILLKillsChildren kills devstack with SIGKILL: every child
// (capture, loaders, Postgres) must die with it (Pdeathsig), and the next
// devstack removes the directory it left.
// TestUpClusterAndStandby: --nats-nodes 3 --captures 2 runs a 3-node
// cluster (every URL in REDMS_NATS_URL, the stream with 3 replicas) and two
// captures, one of which stands by.
func TestUpClusterAndStandby(t *testing.T) {
	t.Parallel()
	u := startUp(t, "--nats-nodes", "3", "--captures", "2")
	u.checkURLs(t)
	if urls := strings.Split(u.env["REDMS_NATS_URL"], ","); len(urls) != 3 {
		t.Fatalf("REDMS_NATS_URL = %q, want 3 servers", u.env["REDMS_NATS_URL"])
	}
	captures := 0
	for _, p := range stackProcs(u.PID(), u.env["REDMS_DEVSTACK_DIR"]) {
		if strings.HasSuffix(p.cmd, "redms-capture") {
			captures++
		}
	}
	if captures != 2 {
		t.Errorf("%d capture processes, want 2", captures)
	}
	_, js := testenv.ConnectNATS(t, u.env["REDMS_NATS_URL"])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, u.env["REDMS_STREAM"])
	if err != nil {
		t.Fatal(err)
	}
	if r := st.CachedInfo().Config.Replicas; r != 3 {
		t.Errorf("stream has %d replicas, want 3", r)
	}
	standby := filepath.Join(u.env["REDMS_DEVSTACK_DIR"], "logs", "capture-2.log")
	testenv.Eventually(t, 30*time.Second, "capture 2 standing by", func() bool {
		return strings.Contains(proc.ReadFile(standby), "standing by")
	})
	if err := u.Stop(90 * time.Second); err != nil {
		t.Fatalf("redms-devstack exited with %v after SIGTERM\n%s", err, u.Log.String())
	}
}

func TestSIGKILLKillsChildren(t *testing.T) {
	t.Parallel()
	u := startUp(t)
	dir := u.env["REDMS_DEVSTACK_DIR"]
	procs := stackProcs(u.PID(), dir)
	if len(procs) < 4 {
		t.Fatalf("want at least postgres, capture and two loaders, got:\n%s", namesOf(procs))
	}
	u.Kill()
	waitGone(t, procs, 30*time.Second)
	// A devstack starting meanwhile (the other test) may have removed it already.
	removeStale(filepath.Dir(dir), discardLogger())
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("removeStale left %s: %v", dir, err)
	}
}

// TestRemoveStale removes the directory of a devstack that no longer runs
// and keeps the one of a running devstack.
func TestRemoveStale(t *testing.T) {
	tmp := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for name, pid := range map[string]int{dirPrefix + "dead": dead.Process.Pid, dirPrefix + "live": os.Getpid()} {
		d := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Join(d, "pg"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, pidFile), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removeStale(tmp, discardLogger())
	if _, err := os.Stat(filepath.Join(tmp, dirPrefix+"dead")); !os.IsNotExist(err) {
		t.Errorf("dir of a dead devstack kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, dirPrefix+"live")); err != nil {
		t.Errorf("dir of a running devstack removed: %v", err)
	}
}

// TestDemo runs a short `redms-devstack demo`, as `make demo` does: it must
// exit 0 with a matching comparison and leave no stack directory behind.
func TestDemo(t *testing.T) {
	t.Parallel()
	p := testenv.StartProcess(t, proc.Options{Name: "redms-devstack demo", Path: devstackBin,
		Args: []string{"demo", "--duration", "5s", "--rate", "10", "--seed", "7", "--prefill", "20000"}, Env: os.Environ()})
	if err := p.WaitExit(4 * time.Minute); err != nil {
		t.Fatalf("demo: %v\n%s", err, p.Log.String())
	}
	text := p.Log.String()
	for _, want := range []string{"public.customers", "equal", "result     MATCH", "captured", "lag        p50",
		"snapshot public.backfill: done, 20000 of", "public.backfill"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	m := regexp.MustCompile(`stack directory" dir=(\S+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("demo did not log its stack directory:\n%s", text)
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("stack dir %s not removed: %v", m[1], err)
	}
	if left := stackProcs(-1, m[1]); len(left) > 0 {
		t.Errorf("processes naming the stack dir remain:\n%s", namesOf(left))
	}
}
