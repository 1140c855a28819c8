package e2e

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// freshness measures how far the warehouse is behind the source while a
// run goes on: it stamps one source row with the time every 100 ms, and
// reads every 100 ms how old the warehouse's copy of that stamp is.
type freshness struct {
	mu      sync.Mutex
	samples []lagSample
	stop    context.CancelFunc
	done    sync.WaitGroup
}

type lagSample struct {
	at  time.Time
	lag time.Duration
}

const tickTable = "public.e2e_tick"

// startFreshness creates the stamped table and starts stamping and
// sampling until stop.
func (s *stack) startFreshness(t testing.TB) *freshness {
	t.Helper()
	s.pg.Exec(t, sourceDB, "CREATE TABLE "+tickTable+" (id integer PRIMARY KEY, at timestamptz); INSERT INTO "+tickTable+" VALUES (1, clock_timestamp())")
	ctx, cancel := context.WithCancel(context.Background())
	f := &freshness{stop: cancel}
	f.done.Add(2)
	every := func(do func()) {
		defer f.done.Done()
		tickUntil(ctx, 100*time.Millisecond, do)
	}
	go every(func() {
		_, _ = s.source.Exec(ctx, "UPDATE "+tickTable+" SET at = clock_timestamp() WHERE id = 1")
	})
	go every(func() {
		var lag float64
		if err := s.warehouse.QueryRow(ctx, "SELECT extract(epoch FROM clock_timestamp() - at)::float8 FROM "+tickTable+" WHERE id = 1").Scan(&lag); err != nil {
			return // not loaded yet, or the warehouse is busy: no sample
		}
		f.mu.Lock()
		f.samples = append(f.samples, lagSample{time.Now(), time.Duration(lag * float64(time.Second))})
		f.mu.Unlock()
	})
	t.Cleanup(f.end)
	return f
}

// end stops stamping and sampling.
func (f *freshness) end() {
	f.stop()
	f.done.Wait()
}

// worst is the largest lag sampled in [from, to].
func (f *freshness) worst(from, to time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var w time.Duration
	for _, s := range f.samples {
		if !s.at.Before(from) && !s.at.After(to) {
			w = max(w, s.lag)
		}
	}
	return w
}

// median is the median lag sampled in [from, to].
func (f *freshness) median(from, to time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var lags []time.Duration
	for _, s := range f.samples {
		if !s.at.Before(from) && !s.at.After(to) {
			lags = append(lags, s.lag)
		}
	}
	if len(lags) == 0 {
		return 0
	}
	slices.Sort(lags)
	return lags[len(lags)/2]
}

// failover is one fault of a run and the window after it in which its
// effect on freshness is looked for.
type failover struct {
	what       string
	start, end time.Time
}

// report is one line per failover: the longest lag from its start until
// settle after its end (or the next one's start), against the median
// before the first.
func (f *freshness) report(t testing.TB, baselineFrom time.Time, fs []failover, settle time.Duration) {
	t.Helper()
	if len(fs) == 0 {
		return
	}
	base := f.median(baselineFrom, fs[0].start)
	t.Logf("freshness before the first failover: median lag %s (0: %s had not reached the warehouse yet)", base.Round(10*time.Millisecond), tickTable)
	for i, x := range fs {
		until := x.end.Add(settle)
		if i+1 < len(fs) && fs[i+1].start.Before(until) {
			until = fs[i+1].start
		}
		w := f.worst(x.start, until)
		t.Logf("freshness, %s: longest lag %s (%s above the median) until %s after its end",
			x.what, w.Round(10*time.Millisecond), max(w-base, 0).Round(10*time.Millisecond), until.Sub(x.end).Round(100*time.Millisecond))
	}
}

// tickUntil calls do every interval until ctx ends.
func tickUntil(ctx context.Context, every time.Duration, do func()) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			do()
		}
	}
}
