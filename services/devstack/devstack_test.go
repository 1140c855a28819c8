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
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// binDir holds redms-devstack, redms-capture and redms-loader, built by
// TestMain, so that devstack finds the services next to itself as it does
// in bin/.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "redms-devstack-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	for name, src := range map[string]string{
		"redms-devstack": ".",
		"redms-capture":  "../capture",
		"redms-loader":   "../loader",
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s in %s: %v\n%s\n", name, src, err, out)
			return 1
		}
	}
	return m.Run()
}

// upStack is one `redms-devstack up` process.
type upStack struct {
	cmd     *exec.Cmd
	envFile string
	env     map[string]string
	stderr  *os.File
	exited  chan error
}

func startUp(t *testing.T) *upStack {
	t.Helper()
	dir := t.TempDir()
	u := &upStack{envFile: filepath.Join(dir, "devstack.env"), exited: make(chan error, 1)}
	var err error
	if u.stderr, err = os.Create(filepath.Join(dir, "stderr")); err != nil {
		t.Fatal(err)
	}
	u.cmd = exec.Command(filepath.Join(binDir, "redms-devstack"), "up", "--env-file", u.envFile)
	u.cmd.Stdout = u.stderr
	u.cmd.Stderr = u.stderr
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { u.exited <- u.cmd.Wait() }()
	t.Cleanup(func() {
		_ = u.cmd.Process.Kill()
		if t.Failed() {
			out, _ := os.ReadFile(u.stderr.Name())
			t.Logf("redms-devstack output:\n%s", out)
		}
	})
	deadline := time.After(3 * time.Minute)
	for {
		if raw, err := os.ReadFile(u.envFile); err == nil {
			u.env = parseEnv(t, string(raw))
			return u
		}
		select {
		case err := <-u.exited:
			out, _ := os.ReadFile(u.stderr.Name())
			t.Fatalf("redms-devstack up exited before writing %s: %v\n%s", u.envFile, err, out)
		case <-deadline:
			t.Fatalf("redms-devstack up wrote no env file within 3m")
		case <-time.After(100 * time.Millisecond):
		}
	}
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

// proc identifies a process across pid reuse.
type proc struct {
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
func stackProcs(root int, marks ...string) []proc {
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
	var out []proc
	for pid := range in {
		if pid != root && start[pid] != "" {
			out = append(out, proc{pid: pid, start: start[pid], cmd: cmdline(pid)})
		}
	}
	return out
}

// alive reports whether p still runs (a zombie waiting for its reaper does
// not run).
func alive(p proc) bool {
	_, state, start, ok := procStat(p.pid)
	return ok && start == p.start && state != "Z"
}

// waitGone waits until none of procs runs, and fails naming the survivors.
func waitGone(t *testing.T, procs []proc, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var left []string
		for _, p := range procs {
			if alive(p) {
				left = append(left, fmt.Sprintf("%d %s", p.pid, p.cmd))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d processes of the stack still run %s after devstack ended:\n%s", len(left), within, strings.Join(left, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func namesOf(procs []proc) string {
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
	procs := stackProcs(u.cmd.Process.Pid, u.env["REDMS_DEVSTACK_DIR"])
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

	if err := u.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-u.exited:
		if err != nil {
			out, _ := os.ReadFile(u.stderr.Name())
			t.Fatalf("redms-devstack exited with %v after SIGTERM\n%s", err, out)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("redms-devstack did not exit within 90s of SIGTERM")
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
func TestSIGKILLKillsChildren(t *testing.T) {
	t.Parallel()
	u := startUp(t)
	dir := u.env["REDMS_DEVSTACK_DIR"]
	procs := stackProcs(u.cmd.Process.Pid, dir)
	if len(procs) < 4 {
		t.Fatalf("want at least postgres, capture and two loaders, got:\n%s", namesOf(procs))
	}
	if err := u.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-u.exited
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
	cmd := exec.Command(filepath.Join(binDir, "redms-devstack"), "demo", "--duration", "5s", "--rate", "10", "--seed", "7")
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo: %v\n%s", err, out.String())
		}
	case <-time.After(4 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("demo did not finish within 4m\n%s", out.String())
	}
	text := out.String()
	for _, want := range []string{"public.customers", "result     MATCH", "captured", "lag        p50"} {
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
