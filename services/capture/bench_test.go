package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/scrape"
	"github.com/redms/redms/pkg/testinfra/testenv"
)

// benchLoad makes a backlog of changes over three tables with ~200-byte rows:
// inserts, updates and deletes in transactions of 1000 rows. It returns the
// number of changes.
func benchLoad(b testing.TB, url string, rows int) int {
	c := connect(b, url)
	exec1(b, c, `
CREATE TABLE items (id int PRIMARY KEY, v int, name text, body text);
CREATE TABLE lines (order_id int, line int, qty int, body text, PRIMARY KEY (order_id, line));
CREATE TABLE events (id bigint PRIMARY KEY, kind text, payload text)`)
	changes := 0
	const step = 1000
	for from := 1; from <= rows; from += step {
		to := from + step - 1
		exec1(b, c, `INSERT INTO items SELECT g, 1, 'item ' || g, repeat(md5(g::text), 5) FROM generate_series($1::int, $2::int) g`, from, to)
		exec1(b, c, `INSERT INTO lines SELECT g / 4, g % 4, g, repeat(md5((g+1)::text), 5) FROM generate_series($1::int, $2::int) g`, from, to)
		exec1(b, c, `INSERT INTO events SELECT g, 'k' || (g % 7), repeat(md5((g+2)::text), 5) FROM generate_series($1::int, $2::int) g`, from, to)
		changes += 3 * step
	}
	for from := 1; from <= rows; from += step {
		to := from + step - 1
		exec1(b, c, `UPDATE items SET v = v + 1 WHERE id BETWEEN $1 AND $2`, from, to)
		changes += step
	}
	for from := 1; from <= rows/2; from += step {
		to := from + step - 1
		exec1(b, c, `DELETE FROM events WHERE id BETWEEN $1 AND $2`, from, to)
		changes += step
	}
	return changes
}

// vmHWM returns the peak resident set of a process in MB.
func vmHWM(b *testing.B, pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.Fields(rest)[0])
			if err != nil {
				b.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

// cpuSeconds returns the user+system CPU time of a process (clock ticks of
// 1/100 s, as Linux reports them to user space).
func cpuSeconds(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which is in parentheses).
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return float64(utime+stime) / 100
}

// BenchmarkCapture drains the same backlog from two identical slots, once
// with pg_recvlogical into /dev/null and once with redms-capture (its own
// process) into a JetStream file stream of the NATS server embedded in the
// benchmark's process (whose CPU time is the server's), until every change
// is acknowledged. REDMS_BATCH_* and REDMS_MAX_INFLIGHT* pass through.
// REDMS_BENCH_ROWS sets the rows per table (default 250000: 1.125M changes);
// REDMS_BENCH_CPUPROFILE writes capture's CPU profile there,
// REDMS_BENCH_NATSPROFILE the benchmark process's (the NATS server's).
func BenchmarkCapture(b *testing.B) {
	rows := 250_000
	if v := os.Getenv("REDMS_BENCH_ROWS"); v != "" {
		rows, _ = strconv.Atoi(v)
	}
	for i := 0; i < b.N; i++ {
		pg := testenv.StartPostgres(b)
		ns := testenv.StartNATS(b)
		_, js := ns.Connect(b)
		url := pg.CreateDatabase(b, "bench")
		c := connect(b, url)
		exec1(b, c, "SELECT pg_create_logical_replication_slot('bench_a', 'test_decoding')")
		exec1(b, c, "SELECT pg_create_logical_replication_slot('bench_b', 'test_decoding')")
		start := time.Now()
		changes := benchLoad(b, url, rows)
		end := currentLSN(b, c)
		b.Logf("backlog: %d changes, %s of WAL, loaded in %s", changes, end, time.Since(start).Round(time.Millisecond))

		// (a) pg_recvlogical.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		start = time.Now()
		cmd := exec.CommandContext(ctx, filepath.Join(pg.BinDir(), "pg_recvlogical"), "-d", url, "-S", "bench_a", "--start",
			"-f", "/dev/null", "-o", "include-xids=1", "-o", "include-timestamp=1", "-o", "skip-empty-xacts=1",
			"--endpos", end.String(), "--no-loop")
		if out, err := cmd.CombinedOutput(); err != nil {
			cancel()
			b.Fatalf("pg_recvlogical: %v\n%s", err, out)
		}
		recvDur := time.Since(start)
		cancel()

		// (b) redms-capture.
		env := liveEnv(url, ns.URL(), "bench_b")
		env["REDMS_LOG_LEVEL"] = "warn"
		env["REDMS_METRICS_ADDR"] = testenv.FreeAddr(b)
		for _, k := range []string{"REDMS_BATCH_RECORDS", "REDMS_BATCH_BYTES", "REDMS_BATCH_LINGER", "REDMS_MAX_INFLIGHT", "REDMS_MAX_INFLIGHT_BYTES"} {
			if v := os.Getenv(k); v != "" { // to compare settings
				env[k] = v
			}
		}
		var args []string
		if p := os.Getenv("REDMS_BENCH_CPUPROFILE"); p != "" {
			args = append(args, "--cpuprofile", p)
		}
		if f := os.Getenv("REDMS_BENCH_NATSPROFILE"); f != "" { // the embedded server's side
			out, err := os.Create(f)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.StartCPUProfile(out); err != nil {
				b.Fatal(err)
			}
			defer out.Close()
			defer pprof.StopCPUProfile()
		}
		natsCPU := cpuSeconds(b, os.Getpid())
		start = time.Now()
		p := startBinary(b, *plainBin, env, args...)
		// Until every change has a PubAck, by capture's own count: cheap
		// to ask, so the test process's CPU stays the server's.
		deadline := time.Now().Add(10 * time.Minute)
		// (Uncompressed: gzip made a scrape cost capture ~0.6 ms.)
		client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
		published := func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			m, err := scrape.Get(ctx, client, "http://"+env["REDMS_METRICS_ADDR"]+"/metrics")
			if err != nil {
				return 0
			}
			return m.Sum("redms_capture_changes_published_total")
		}
		for published() < float64(changes) {
			if time.Now().After(deadline) {
				b.Fatalf("capture published %.0f of %d changes in 10 minutes", published(), changes)
			}
			time.Sleep(50 * time.Millisecond)
		}
		capDur := time.Since(start)
		rss := vmHWM(b, p.PID())
		cpu := cpuSeconds(b, p.PID())
		natsCPU = cpuSeconds(b, os.Getpid()) - natsCPU
		if err := p.Stop(30 * time.Second); err != nil {
			b.Errorf("capture exit: %v", err)
		}
		msgs := streamCount(b, js, "REDMS_WAL")
		if n := streamChanges(b, js, "REDMS_WAL"); n != changes {
			b.Errorf("stream holds %d changes, want %d", n, changes)
		}

		b.ReportMetric(float64(changes)/recvDur.Seconds(), "recvlogical-changes/s")
		b.ReportMetric(float64(changes)/capDur.Seconds(), "capture-changes/s")
		b.ReportMetric(recvDur.Seconds()/capDur.Seconds(), "capture/recvlogical-ratio")
		b.ReportMetric(rss, "capture-peak-rss-MB")
		b.ReportMetric(cpu*1e6/float64(changes), "capture-cpu-µs/change")
		b.ReportMetric(natsCPU*1e6/float64(changes), "nats-server-cpu-µs/change")
		b.Logf("pg_recvlogical %s, redms-capture %s (%d changes in %d messages)", recvDur.Round(time.Millisecond), capDur.Round(time.Millisecond), changes, msgs)
	}
}
