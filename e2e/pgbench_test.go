package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redms/redms/pkg/demo/verify"
	"github.com/redms/redms/pkg/typemap"
)

// TestPgbenchRedshift runs pgbench flat out (TPC-B-like transactions on
// pgbench_accounts, pgbench_tellers, pgbench_branches with their primary
// keys from the start, and inserts into the keyless pgbench_history)
// through capture, two loaders and redms-rsemu: nothing may park, and the
// warehouse must end equal to the source. It reports how fresh the
// warehouse stayed — now minus the newest pgbench_history.mtime visible in
// it, sampled every second — and how many serialization conflicts the
// loaders retried (redms_loader_serialization_conflicts_total); neither is
// asserted. REDMS_E2E_PGBENCH_DURATION sets how long pgbench runs (default
// 30s; make soak: 5m).
func TestPgbenchRedshift(t *testing.T) {
	ctx := context.Background()
	duration := 30 * time.Second
	if v := os.Getenv("REDMS_E2E_PGBENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("REDMS_E2E_PGBENCH_DURATION=%q: %v", v, err)
		}
		duration = d
	}
	s := newStack(t, "redshift")
	run := s.pgbench(t)
	bench := func(args ...string) {
		t.Helper()
		out, err := run(ctx, args...)
		if err != nil {
			t.Fatalf("pgbench %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("pgbench %s:\n%s", strings.Join(args, " "), lastLines(out, 12))
	}

	// capture first, so the initial rows travel through the slot too
	s.startCapture(t, slot)
	s.startLoaders(t, 2)
	// drop, create the tables, their primary keys, then the rows
	bench("-i", "-I", "dtpg", "-s", "2")
	s.createMarker(t)

	stopSampling := s.sampleFreshness(time.Second)
	start := time.Now()
	bench("-n", "-c", "4", "-j", "2", "-T", fmt.Sprint(int(duration.Seconds())))
	t.Logf("pgbench ran %.1fs", time.Since(start).Seconds())
	markerLSN := s.writeMarker(t, 1)
	s.waitCaughtUp(t, slot, markerLSN, 3*time.Minute)
	fresh := stopSampling()

	rep, err := verify.Compare(ctx, s.source, s.warehouse, verify.Options{Dialect: typemap.Redshift, MaxDiffs: 3})
	if err != nil {
		t.Fatalf("compare source and warehouse: %v", err)
	}
	t.Logf("rows compared per table:\n%s", rep.Summary())
	for _, d := range rep.Diffs {
		t.Errorf("DIFFERENCE: %s", d)
	}
	var conflicts, errs, windows, parked float64
	logged := 0 // retries logged for a serialization conflict (ERROR: 1023)
	for _, p := range s.loaders {
		logged += len(p.grep(1<<30, "ERROR: 1023"))
		m, err := p.metrics()
		if err != nil {
			t.Errorf("scrape %s: %v", p.name, err)
			continue
		}
		conflicts += m.Sum("redms_loader_serialization_conflicts_total")
		errs += m.Sum("redms_loader_apply_errors_total")
		windows += m.Sum("redms_loader_windows_applied_total")
		parked = max(parked, m.Sum("redms_loader_parked_tables"))
		for _, line := range p.grep(5, "table parked") {
			t.Errorf("%s parked a table: %s", p.name, line)
		}
	}
	if parked != 0 {
		t.Errorf("redms_loader_parked_tables = %v, want 0", parked)
	}
	if len(fresh) == 0 {
		t.Errorf("no freshness sample: the warehouse never had pgbench_history rows")
		return
	}
	t.Logf("freshness (now − newest pgbench_history.mtime in the warehouse, %d samples, window 2s): p50 %.1fs, p90 %.1fs, max %.1fs",
		len(fresh), quantile(fresh, 0.5), quantile(fresh, 0.9), fresh[len(fresh)-1])
	t.Logf("loaders: %v windows applied, %v apply errors retried, of them %v serialization conflicts (%d retries logged with ERROR: 1023)", windows, errs, conflicts, logged)
}

// lastLines is the last n lines of text.
func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// sampleFreshness samples, every interval until stop is called, how old
// the newest pgbench_history row in the warehouse is; stop returns the
// samples in seconds, sorted. clock_timestamp() runs after any lock wait
// of the read: a reader waiting for a window's transaction sees the data
// that old.
func (s *stack) sampleFreshness(every time.Duration) (stop func() []float64) {
	var mu sync.Mutex
	var fresh []float64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tickUntil(ctx, every, func() {
			var lag *float64
			if err := s.warehouse.QueryRow(ctx, `SELECT extract(epoch FROM clock_timestamp() - max(mtime))::float8 FROM public.pgbench_history`).Scan(&lag); err == nil && lag != nil {
				mu.Lock()
				fresh = append(fresh, *lag)
				mu.Unlock()
			}
		})
	}()
	return func() []float64 {
		cancel()
		<-done
		slices.Sort(fresh)
		return fresh
	}
}

// quantile is the q-quantile of sorted samples (not empty).
func quantile(sorted []float64, q float64) float64 {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}
