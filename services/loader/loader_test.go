package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/services/loader/internal/park"
)

// A window closes by its timer although nothing else arrives, and only
// after its apply are its messages acked.
func TestWindowClosesByTimer(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.publish(t, "items", change{"INSERT", 1, "a"}, change{"INSERT", 2, "b"}, change{"UPDATE", 1, "a2"})
	w.publish(t, "items", change{"DELETE", 2, ""}, change{"INSERT", 3, "c"})
	p := w.start(t, "solo", map[string]string{"REDMS_WINDOW_DURATION": "1s"})
	testenv.Eventually(t, 30*time.Second, "items applied", func() bool { return w.complete(t, "items") })
	testenv.Eventually(t, 10*time.Second, "items acked", func() bool { return w.backlog(t, "items") == 0 })
	if v, _ := p.scrape(`redms_loader_windows_applied_total{table="public.items"}`); v != 1 {
		t.Errorf("windows applied = %v, want one window for five changes published at once", v)
	}
	if v, _ := p.scrape(`redms_loader_changes_applied_total{table="public.items"}`); v != 5 {
		t.Errorf("changes applied = %v, want 5", v)
	}
	if v, ok := p.scrape(`redms_loader_owned_tables`); !ok || v != 1 {
		t.Errorf("owned tables = %v, %v", v, ok)
	}
}

// Two replicas split the tables; after one is killed its tables reach the
// other within 30s and every target is complete.
func TestFailoverAfterKill(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tables := []string{"t1", "t2", "t3", "t4", "t5", "t6"}
	for i, tab := range tables {
		w.publish(t, tab, change{"INSERT", 1, "v1"}, change{"INSERT", 2 + i, "v2"})
	}
	env := map[string]string{"REDMS_WINDOW_DURATION": "2s"}
	a := w.start(t, "a", env)
	b := w.start(t, "b", env)
	testenv.Eventually(t, 60*time.Second, "every table applied by the pair", func() bool {
		for _, tab := range tables {
			if !w.complete(t, tab) {
				return false
			}
		}
		return true
	})
	testenv.Eventually(t, 30*time.Second, "both replicas owning tables", func() bool {
		na, _ := a.scrape("redms_loader_owned_tables")
		nb, _ := b.scrape("redms_loader_owned_tables")
		return na > 0 && nb > 0 && na+nb == float64(len(tables))
	})
	// New changes land in open windows of both replicas; kill b mid-window.
	for _, tab := range tables {
		w.publish(t, tab, change{"UPDATE", 1, "after"}, change{"INSERT", 100, "new"}, change{"DELETE", 1, ""})
	}
	b.Kill()
	killed := time.Now()
	testenv.Eventually(t, 30*time.Second, "b's tables applied by a", func() bool {
		for _, tab := range tables {
			if !w.complete(t, tab) {
				return false
			}
		}
		return true
	})
	t.Logf("all tables complete %v after kill -9", time.Since(killed).Round(100*time.Millisecond))
	testenv.Eventually(t, 30*time.Second, "a owns every table", func() bool {
		n, _ := a.scrape("redms_loader_owned_tables")
		return n == float64(len(tables))
	})
	for _, tab := range tables {
		testenv.Eventually(t, 10*time.Second, tab+" acked", func() bool { return w.backlog(t, tab) == 0 })
	}
}

// An unparseable record parks its table: its messages stay un-acked, the
// gauge and the KV key say so, one log line names table, LSN and reason, and
// the other tables flow. After the operator removes the bad message (nats
// stream rmm) and runs redms-loader resume, the rest is applied.
func TestParkAndResume(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.start(t, "solo", map[string]string{"REDMS_WINDOW_DURATION": "500ms"})
	w.publish(t, "good1", change{"INSERT", 1, "x"})
	w.publish(t, "bad", change{"INSERT", 1, "one"}, change{"INSERT", 2, "two"})
	badSeq := w.publishRaw(t, "bad", "table public.bad: INSERT: id[integer]:3 v[text]:'no closing quote")[0]
	w.publish(t, "bad", change{"INSERT", 4, "four"}, change{"UPDATE", 1, "uno"})
	w.publish(t, "good2", change{"INSERT", 1, "y"})

	series := `redms_loader_table_parked{table="public.bad"}`
	testenv.Eventually(t, 30*time.Second, "bad parked", func() bool { v, _ := p.scrape(series); return v == 1 })
	ctx := context.Background()
	parks, err := park.Open(ctx, w.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	rec, ok, err := parks.Get(ctx, subject.KVKey(tableRef("bad")))
	if err != nil || !ok {
		t.Fatalf("parked KV key: %v, %v", ok, err)
	}
	if rec.Table != "public.bad" || rec.Reason == "" || rec.FirstLSN == "" || rec.Replica != "solo" {
		t.Errorf("parked record = %+v", rec)
	}
	var parkedLine string
	for _, line := range strings.Split(p.Log.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, "table parked") {
			if parkedLine != "" {
				t.Errorf("more than one park log line:\n%s\n%s", parkedLine, line)
			}
			parkedLine = line
		}
	}
	for _, want := range []string{`"table":"public.bad"`, `"lsn":"`, `"reason":"`} {
		if !strings.Contains(parkedLine, want) {
			t.Errorf("park log line %q lacks %s", parkedLine, want)
		}
	}
	testenv.Eventually(t, 30*time.Second, "the other tables flowing", func() bool {
		return w.complete(t, "good1") && w.complete(t, "good2")
	})
	if n := w.backlog(t, "bad"); n != 5 {
		t.Fatalf("bad's messages in the stream = %d, want all 5 un-acked", n)
	}
	if got := w.target(t, "bad"); len(got) != 0 {
		t.Fatalf("parked table's target = %v, want nothing applied", got)
	}
	w.publish(t, "good1", change{"INSERT", 2, "still flowing"})
	testenv.Eventually(t, 30*time.Second, "good1 flowing while bad is parked", func() bool { return w.complete(t, "good1") })

	// Operator: nats stream rmm REDMS_WAL <seq>, then redms-loader resume.
	s, err := w.js.Stream(ctx, testStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, badSeq); err != nil {
		t.Fatal(err)
	}
	out, err := runResume(t, w, "public.bad")
	if err != nil || !strings.Contains(out, "resumed shop.public.bad") {
		t.Fatalf("redms-loader resume public.bad = %q, %v", out, err)
	}
	testenv.Eventually(t, 30*time.Second, "bad applied after resume", func() bool { return w.complete(t, "bad") })
	testenv.Eventually(t, 10*time.Second, "bad acked", func() bool { return w.backlog(t, "bad") == 0 })
	if v, _ := p.scrape(series); v != 0 {
		t.Errorf("parked gauge after resume = %v", v)
	}
	if out, err := runResume(t, w, "nosuch.table"); err == nil {
		t.Errorf("resume of an unknown table succeeded: %q", out)
	}
}

func runResume(t *testing.T, w *world, table string) (string, error) {
	t.Helper()
	cmd := exec.Command(loaderBin, "resume", table)
	cmd.Env = w.env(t, "resume", "", nil)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// SIGTERM stops within the shutdown timeout, leaving the open window
// un-acked; the next run applies it to the same state.
func TestSIGTERMLeavesWindowUnacked(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	env := map[string]string{"REDMS_WINDOW_DURATION": "1h", "REDMS_SHUTDOWN_TIMEOUT": "5s"}
	p := w.start(t, "first", env)
	w.publish(t, "orders", change{"INSERT", 1, "a"}, change{"INSERT", 2, "b"}, change{"UPDATE", 2, "b2"}, change{"DELETE", 1, ""})
	testenv.Eventually(t, 30*time.Second, "the window to fill", func() bool {
		v, _ := p.scrape(`redms_loader_backlog_messages{table="public.orders"}`)
		return v == 4 && strings.Contains(p.Log.String(), "table acquired")
	})
	time.Sleep(300 * time.Millisecond) // let the messages reach the open window
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !p.Wait(7 * time.Second) {
		t.Fatal("redms-loader did not exit within the 5s shutdown timeout (+2s)")
	}
	if err := p.Err(); err != nil {
		t.Fatalf("redms-loader exited with %v", err)
	}
	if n := w.backlog(t, "orders"); n != 4 {
		t.Fatalf("messages left in the stream = %d, want the 4 of the abandoned window", n)
	}
	if got := w.target(t, "orders"); len(got) != 0 {
		t.Fatalf("target after SIGTERM = %v, want nothing applied", got)
	}
	w.start(t, "second", map[string]string{"REDMS_WINDOW_DURATION": "500ms"})
	testenv.Eventually(t, 30*time.Second, "the next run to apply the window", func() bool { return w.complete(t, "orders") })
	testenv.Eventually(t, 10*time.Second, "orders acked", func() bool { return w.backlog(t, "orders") == 0 })
	if got := fmt.Sprint(w.target(t, "orders")); got != "map[2:b2]" {
		t.Fatalf("target = %s", got)
	}
}
