package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/demo/workload"
	"github.com/redms/redms/pkg/testinfra/proc"
	"github.com/redms/redms/pkg/testinfra/scrape"
)

// markerTable gets one row after the workload: once the slot has confirmed
// past it and the stream is empty, the warehouse has everything before it.
const markerTable = "redms_demo_marker"

type demoOptions struct {
	Duration       time.Duration
	Seed           int64
	Rate           float64
	CatchUpTimeout time.Duration
	Prefill        int
}

// prefillTable is the table the demo fills before capture first starts.
const prefillTable = "public.backfill"

// PrefillSQL creates prefillTable with n rows of about 200 bytes.
func PrefillSQL(n int) string {
	return fmt.Sprintf(`CREATE TABLE %s (id bigint PRIMARY KEY, account integer NOT NULL, note text, amount numeric(12,2), created timestamptz NOT NULL);
INSERT INTO %s SELECT g, g %% 1000, repeat(md5(g::text), 4), g * 0.01, '2026-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, %d) g`, prefillTable, prefillTable, n)
}

// waitSnapshot prints the initial snapshot's progress of prefillTable until
// it is done.
func waitSnapshot(ctx context.Context, js jetstream.JetStream, out io.Writer, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if line, done, err := snapshotLine(ctx, js); err == nil && line != "" {
			if line != last {
				fmt.Fprintln(out, line)
				last = line
			}
			if done {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("the snapshot of %s did not finish within %v", prefillTable, timeout)
}

// snapshotLine reads the status of prefillTable's snapshot (docs/CONTRACTS.md
// REDMS_SNAPSHOTS).
func snapshotLine(ctx context.Context, js jetstream.JetStream) (string, bool, error) {
	kv, err := js.KeyValue(ctx, "REDMS_SNAPSHOTS")
	if err != nil {
		return "", false, err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return "", false, err
	}
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var st struct {
			Table        string `json:"table"`
			State        string `json:"state"`
			RowsDone     int64  `json:"rows_done"`
			RowsEstimate int64  `json:"rows_estimate"`
			Error        string `json:"error"`
		}
		if json.Unmarshal(e.Value(), &st) != nil || st.Table != prefillTable {
			continue
		}
		if st.State == "failed" || st.State == "refused" {
			return "", false, fmt.Errorf("snapshot of %s %s: %s", st.Table, st.State, st.Error)
		}
		return fmt.Sprintf("snapshot %s: %s, %d of ~%d rows", st.Table, st.State, st.RowsDone, st.RowsEstimate), st.State == "done", nil
	}
	return "", false, nil
}

// progress is one reading of the services' metrics.
type progress struct {
	Captured, Applied, Backlog, Lag float64
	Parked                          float64
	// LagP50, LagP99 of the loaders' per-window lag histogram; ok false
	// before the first window.
	LagP50, LagP99 float64
	LagOK          bool
}

func (p progress) line() string {
	return fmt.Sprintf("captured %7.0f  applied %7.0f  backlog %6.0f  lag %5.1fs", p.Captured, p.Applied, p.Backlog, p.Lag)
}

// readProgress scrapes capture and every loader.
func (s *stack) readProgress(ctx context.Context, client *http.Client) (progress, error) {
	var p progress
	capt, err := scrape.Get(ctx, client, "http://"+s.captureMetrics+"/metrics")
	if err != nil {
		return p, err
	}
	p.Captured = capt.Sum("redms_capture_changes_published_total")
	var all scrape.Samples
	for _, addr := range s.loaderMetrics {
		ls, err := scrape.Get(ctx, client, "http://"+addr+"/metrics")
		if err != nil {
			return p, err
		}
		all = append(all, ls...)
	}
	p.Applied = all.Sum("redms_loader_changes_applied_total")
	p.Backlog = all.MaxByLabel("redms_loader_backlog_messages", "table")
	p.Lag = all.Max("redms_loader_lag_seconds")
	p.Parked = all.Max("redms_loader_parked_tables")
	p50, ok50 := all.Quantile("redms_loader_apply_lag_seconds", 0.5)
	p99, ok99 := all.Quantile("redms_loader_apply_lag_seconds", 0.99)
	p.LagP50, p.LagP99, p.LagOK = p50, p99, ok50 && ok99
	return p, nil
}

// ticker prints a progress line every second (rewritten in place on a
// terminal, a new line every 5 s otherwise) until stop is called.
type ticker struct {
	s      *stack
	out    io.Writer
	tty    bool
	phase  string
	mu     sync.Mutex
	last   progress
	done   chan struct{}
	wg     sync.WaitGroup
	client *http.Client
}

func newTicker(ctx context.Context, s *stack, out io.Writer) *ticker {
	t := &ticker{s: s, out: out, tty: isTerminal(out), done: make(chan struct{}), client: &http.Client{Timeout: 2 * time.Second}}
	t.wg.Add(1)
	go t.loop(ctx)
	return t
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (t *ticker) setPhase(p string) {
	t.mu.Lock()
	t.phase = p
	t.mu.Unlock()
}

func (t *ticker) loop(ctx context.Context) {
	defer t.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.done:
			return
		case <-tick.C:
		}
		p, err := t.s.readProgress(ctx, t.client)
		if err != nil {
			continue
		}
		t.mu.Lock()
		t.last = p
		phase := t.phase
		t.mu.Unlock()
		n++
		line := fmt.Sprintf("[%3.0fs %-9s] %s", time.Since(start).Seconds(), phase, p.line())
		if t.tty {
			fmt.Fprintf(t.out, "\r\033[K%s", line)
		} else if n%5 == 0 {
			fmt.Fprintln(t.out, line)
		}
	}
}

func (t *ticker) stop() progress {
	close(t.done)
	t.wg.Wait()
	if t.tty {
		fmt.Fprintln(t.out)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// runDemo starts the stack, drives the workload, waits for catch-up and
// compares source and warehouse.
func runDemo(ctx context.Context, opts stackOptions, d demoOptions, out io.Writer) (err error) {
	if err := checkBinary(opts.BinDir, "redms-verify"); err != nil {
		return err
	}
	s, err := startStack(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			for _, c := range s.children() {
				if t := proc.Tail(proc.ReadFile(c.logPath), 5); t != "" {
					fmt.Fprintf(out, "--- last lines of %s:\n%s\n", c.name, t)
				}
			}
			if kept, kerr := keepLogs(filepath.Join(s.dir, "logs")); kerr == nil {
				fmt.Fprintf(out, "service logs kept in %s\n", kept)
			}
		}
		err = errors.Join(err, s.close(context.Background()))
	}()
	source, err := pgxpool.New(ctx, s.pg.URL(sourceDB))
	if err != nil {
		return fmt.Errorf("connect to source: %w", err)
	}
	defer source.Close()
	nc, err := nats.Connect(s.natsURL)
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	fmt.Fprintf(out, "redms demo: seed %d, %s of workload at %.0f tx/s, %d loaders, %s warehouse\n",
		d.Seed, d.Duration, d.Rate, len(s.loaders), opts.Warehouse)
	if d.Prefill > 0 {
		fmt.Fprintf(out, "redms demo: %s held %d rows before capture first started; its initial snapshot:\n", prefillTable, d.Prefill)
		if err := waitSnapshot(ctx, js, out, d.CatchUpTimeout); err != nil {
			return err
		}
	}
	if _, err := source.Exec(ctx, "CREATE TABLE "+markerTable+" (id integer PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"); err != nil {
		return fmt.Errorf("create marker table: %w", err)
	}
	gen := workload.New(d.Seed, workload.Config{Rate: d.Rate, Logger: opts.Log})
	if err := gen.Setup(ctx, source); err != nil {
		return fmt.Errorf("set up workload: %w", err)
	}
	tick := newTicker(ctx, s, out)
	tick.setPhase("workload")
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	watchErr := make(chan error, 1)
	go func() {
		err := s.watch(runCtx)
		if err != nil {
			cancelRun()
		}
		watchErr <- err
	}()
	stats, runErr := gen.Run(runCtx, source, d.Duration)
	if runErr == nil {
		tick.setPhase("catch-up")
		runErr = s.catchUp(runCtx, source, js, d.CatchUpTimeout)
	}
	last := tick.stop()
	cancelRun()
	if err := <-watchErr; err != nil {
		return err
	}
	if runErr != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		return runErr
	}
	// One last reading after catch-up, for the summary.
	if p, err := s.readProgress(ctx, &http.Client{Timeout: 2 * time.Second}); err == nil {
		last = p
	}

	// The comparison is redms-verify's, as an operator would run it.
	fmt.Fprintln(out)
	code, err := s.verify(ctx, out)
	if err != nil {
		return err
	}
	printSummary(out, code, stats, last)
	switch code {
	case 0:
		return nil
	case 1:
		return errors.New("redms-verify: source and warehouse differ")
	default:
		return fmt.Errorf("redms-verify could not compare (exit %d)", code)
	}
}

// verify runs redms-verify on the whole source, its report to out, and
// returns its exit code.
func (s *stack) verify(ctx context.Context, out io.Writer) (int, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.opts.BinDir, "redms-verify"))
	cmd.Env = append(os.Environ(), "REDMS_SOURCE_URL="+s.pg.URL(sourceDB), "REDMS_WAREHOUSE_URL="+s.warehouseURL,
		"REDMS_WAREHOUSE_DIALECT="+s.local().Dialect, "REDMS_LOG_LEVEL=warn")
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("run redms-verify: %w", err)
	}
	return 0, nil
}

// catchUp writes the marker row and waits until capture has it confirmed
// on the slot and the loaders have acked every message of the stream.
func (s *stack) catchUp(ctx context.Context, source *pgxpool.Pool, js jetstream.JetStream, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tx, err := source.Begin(ctx)
	if err != nil {
		return fmt.Errorf("write marker: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var lsn string
	if _, err := tx.Exec(ctx, "INSERT INTO "+markerTable+" (id) VALUES (1)"); err != nil {
		return fmt.Errorf("write marker: %w", err)
	}
	if err := tx.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		return fmt.Errorf("write marker: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("write marker: %w", err)
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	captured := false
	for {
		if !captured {
			err := source.QueryRow(ctx,
				"SELECT coalesce(confirmed_flush_lsn > $1::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = $2",
				lsn, slotName).Scan(&captured)
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("read slot position: %w", err)
			}
		}
		if parked, err := s.parkedTables(ctx); err == nil && len(parked) > 0 {
			return fmt.Errorf("catch up: tables parked, they will not drain until resumed: %s (reason in the loader logs, \"table parked\")", strings.Join(parked, ", "))
		}
		if captured {
			st, err := js.Stream(ctx, streamName)
			if err == nil {
				info, err := st.Info(ctx)
				if err == nil && info.State.Msgs == 0 {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			if captured {
				return fmt.Errorf("catch up: the loaders did not drain stream %s within %s", streamName, timeout)
			}
			return fmt.Errorf("catch up: capture did not confirm the marker (LSN %s) within %s", lsn, timeout)
		case <-tick.C:
		}
	}
}

func printSummary(out io.Writer, verifyCode int, stats workload.Stats, p progress) {
	lag := "n/a"
	if p.LagOK {
		lag = fmt.Sprintf("p50 %.2fs  p99 %.2fs", p.LagP50, p.LagP99)
	}
	result := "MATCH"
	if verifyCode != 0 {
		result = "MISMATCH"
	}
	fmt.Fprintf(out, "\n%-10s %d transactions\n%-10s %.0f captured, %.0f applied\n%-10s %s (source commit → warehouse commit, per window)\n%-10s %s\n",
		"workload", stats.Transactions, "changes", p.Captured, p.Applied, "lag", lag, "result", result)
}

// parkedTables lists the tables some loader reports parked.
func (s *stack) parkedTables(ctx context.Context) ([]string, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	set := map[string]bool{}
	for _, addr := range s.loaderMetrics {
		samples, err := scrape.Get(ctx, client, "http://"+addr+"/metrics")
		if err != nil {
			return nil, err
		}
		for _, x := range samples {
			if x.Name == "redms_loader_table_parked" && x.Value > 0 {
				set[x.Labels["table"]] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

// keepLogs copies the service logs out of the stack's directory (which is
// removed on exit) into a new temp dir, for a failed demo.
func keepLogs(from string) (string, error) {
	to, err := os.MkdirTemp("", "redms-demo-logs-")
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o644); err != nil {
			return "", err
		}
	}
	return to, nil
}
