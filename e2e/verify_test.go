package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redms/redms/pkg/demo/workload"
	"github.com/redms/redms/pkg/testinfra/testenv"
)

// probeDDL makes the tables the verify tests inject differences into: the
// workload never writes them, so what redms-verify must report is known.
const probeDDL = `
CREATE TABLE verify_probe (id int PRIMARY KEY, name text, code char(4), big numeric, note varchar(20));
INSERT INTO verify_probe SELECT g, 'name ' || g, chr(97 + g % 26), g * 1.5, 'n' || g FROM generate_series(1, 300) g;
UPDATE verify_probe SET note = '' WHERE id = 9;
UPDATE verify_probe SET code = 'ab' WHERE id = 10;
UPDATE verify_probe SET big = 1e30 WHERE id = 11;
CREATE TABLE verify_probe_keys (k varchar(10) PRIMARY KEY, v int);
INSERT INTO verify_probe_keys VALUES ('x', 1), ('x ', 2), ('y', 3), ('z', 4);
CREATE TABLE verify_probe_bag (a int, b text);
ALTER TABLE verify_probe_bag REPLICA IDENTITY FULL;
INSERT INTO verify_probe_bag SELECT g % 20, 'v' || g FROM generate_series(1, 100) g;
`

// injectSQL makes one difference of each kind in the warehouse copies.
const injectSQL = `
UPDATE public.verify_probe SET name = 'changed' WHERE id = 5;
DELETE FROM public.verify_probe WHERE id = 7;
INSERT INTO public.verify_probe (id, name) VALUES (100000, 'extra');
UPDATE public.verify_probe SET note = NULL WHERE id = 9;
UPDATE public.verify_probe SET code = 'ab' WHERE id = 10;
UPDATE public.verify_probe SET big = 92233720368.54775806 WHERE id = 11;
UPDATE public.verify_probe_keys SET k = 'y ' WHERE k = 'y';
INSERT INTO public.verify_probe_bag VALUES (3, 'v3');
`

var injected = []string{
	`public.verify_probe changed (id="10") code`,
	`public.verify_probe changed (id="11") big`,
	`public.verify_probe changed (id="5") name`,
	`public.verify_probe changed (id="9") note`,
	`public.verify_probe extra (id="100000")`,
	`public.verify_probe missing (id="7")`,
	`public.verify_probe_bag extra (a="3", b="v3")`,
	`public.verify_probe_keys extra (k="y ")`,
	`public.verify_probe_keys missing (k="y")`,
}

func TestVerify(t *testing.T)         { runVerify(t, "postgres") }
func TestVerifyRedshift(t *testing.T) { runVerify(t, "redshift") }

// runVerify loads the seeded workload and the probe tables through the
// pipeline, injects differences into the warehouse while the workload
// runs, and expects redms-verify to report exactly those — nothing of the
// workload's changes in flight — both while it runs and once it caught up.
func runVerify(t *testing.T, dialect string) {
	s, caughtUp := startVerify(t, dialect)

	// While the workload runs: its changes are in flight, not differences.
	rep, code, out := s.runVerifyBinary(t)
	if got := diffLines(rep.Tables); strings.Join(got, "\n") != strings.Join(injected, "\n") || code != 1 {
		t.Errorf("redms-verify while the workload runs: exit %d, differences:\n%s\nwant:\n%s\nreport:\n%s", code, strings.Join(got, "\n"), strings.Join(injected, "\n"), out)
	}

	caughtUp()
	rep, code, out = s.runVerifyBinary(t)
	if got := diffLines(rep.Tables); strings.Join(got, "\n") != strings.Join(injected, "\n") || code != 1 {
		t.Errorf("redms-verify after the workload: exit %d, differences:\n%s\nwant:\n%s\nreport:\n%s", code, strings.Join(got, "\n"), strings.Join(injected, "\n"), out)
	}
}

func TestVerifyRepair(t *testing.T)         { runVerifyRepair(t, "postgres") }
func TestVerifyRepairRedshift(t *testing.T) { runVerifyRepair(t, "redshift") }

// runVerifyRepair: redms-verify --repair, while the workload runs, finds
// the injected differences, has them snapshotted again and exits 0 on a
// clean second pass; once the workload caught up a plain run is clean too.
func runVerifyRepair(t *testing.T, dialect string) {
	s, caughtUp := startVerify(t, dialect)

	rep, code, out := s.runVerifyBinary(t, "--repair")
	if got := diffLines(rep.Before); strings.Join(got, "\n") != strings.Join(injected, "\n") {
		t.Errorf("redms-verify --repair, first pass: differences:\n%s\nwant:\n%s\nreport:\n%s", strings.Join(got, "\n"), strings.Join(injected, "\n"), out)
	}
	var repaired []string
	for _, r := range rep.Repairs {
		repaired = append(repaired, fmt.Sprintf("%s whole=%v", r.Table, r.Whole))
		// A range repair reads the source rows of its ranges, not the table:
		// public.verify_probe's ranges (p, k] hold one source row each at
		// most (p is the source key before k), of 300.
		if !r.Whole && (r.Rows > int64(r.Ranges) || r.Ranges == 0) {
			t.Errorf("redms-verify --repair of %s: the snapshot of %d ranges read %d rows, want at most one per range", r.Table, r.Ranges, r.Rows)
		}
	}
	sort.Strings(repaired)
	wantRepaired := "public.verify_probe whole=false\npublic.verify_probe_bag whole=true\npublic.verify_probe_keys whole=false"
	if got := diffLines(rep.Tables); len(got) != 0 || code != 0 || strings.Join(repaired, "\n") != wantRepaired {
		t.Errorf("redms-verify --repair: exit %d, repaired:\n%s\nwant:\n%s\ndifferences after the repair:\n%s\nreport:\n%s", code, strings.Join(repaired, "\n"), wantRepaired, strings.Join(got, "\n"), out)
	}

	caughtUp()
	rep, code, out = s.runVerifyBinary(t)
	if got := diffLines(rep.Tables); len(got) != 0 || code != 0 {
		t.Errorf("redms-verify after the repair and the workload: exit %d, differences:\n%s\nreport:\n%s", code, strings.Join(got, "\n"), out)
	}
}

// startVerify starts the pipeline and the seeded workload, loads the probe
// tables and injects the differences into the warehouse while the workload
// runs; caughtUp waits for the workload's end and the pipeline to catch up.
func startVerify(t *testing.T, dialect string) (s *stack, caughtUp func()) {
	ctx := context.Background()
	seed, duration := seedAndDuration(t, 40*time.Second)
	t.Logf("workload seed %d (rerun with REDMS_E2E_SEED=%d), duration %v, dialect %s", seed, seed, duration, dialect)
	binary(t, "verify")
	s = newStack(t, dialect)
	s.startCapture(t, slot)
	s.startLoaders(t, 2)
	gen := workload.New(seed, workload.Config{Rate: 8, StatementsPerTx: 4, InitialRows: 10, Partitioned: true, Logger: testLogger(t)})
	if err := gen.Setup(ctx, s.source); err != nil {
		t.Fatalf("workload setup: %v", err)
	}
	s.createMarker(t)
	s.pg.Exec(t, sourceDB, probeDDL)

	runCtx, cancelRun := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := gen.Run(runCtx, s.source, duration)
		done <- err
	}()
	finished := false
	t.Cleanup(func() {
		cancelRun()
		if !finished {
			<-done
		}
	})

	for _, tc := range []struct{ table, sql string }{
		{"verify_probe", "SELECT count(*) = 300 FROM public.verify_probe"},
		{"verify_probe_keys", "SELECT count(*) = 4 FROM public.verify_probe_keys"},
		{"verify_probe_bag", "SELECT count(*) = 100 FROM public.verify_probe_bag"},
	} {
		testenv.Eventually(t, 90*time.Second, tc.table+" loaded into the warehouse", func() bool {
			var ok bool
			return s.warehouse.QueryRow(ctx, tc.sql).Scan(&ok) == nil && ok
		})
	}
	s.pg.Exec(t, warehouseDB, injectSQL)
	return s, func() {
		t.Helper()
		finished = true
		if err := <-done; err != nil {
			t.Fatalf("workload: %v", err)
		}
		markerLSN := s.writeMarker(t, 1)
		s.waitCaughtUp(t, slot, markerLSN, 90*time.Second)
	}
}

// verifyTable is a table's result in redms-verify --json.
type verifyTable struct {
	Table  string   `json:"table"`
	Status string   `json:"status"`
	Error  string   `json:"error"`
	Keys   []string `json:"keys"`
	Diffs  []struct {
		Kind    string             `json:"kind"`
		Key     map[string]*string `json:"key"`
		Columns []string           `json:"columns"`
		Count   int                `json:"count"`
	} `json:"diffs"`
}

// verifyReport is the part of redms-verify --json the tests read: with
// --repair, Tables is the second pass, Before the first.
type verifyReport struct {
	Tables  []verifyTable `json:"tables"`
	Before  []verifyTable `json:"before"`
	Repairs []struct {
		Table  string `json:"table"`
		Whole  bool   `json:"whole"`
		Ranges int    `json:"ranges"`
		Rows   int64  `json:"rows"`
	} `json:"repairs"`
}

// runVerifyBinary runs redms-verify --json (and args) on every table and
// returns its report, its exit code and its output.
func (s *stack) runVerifyBinary(t *testing.T, args ...string) (verifyReport, int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t, "verify"), append([]string{"--json"}, args...)...)
	cmd.Env = append(os.Environ(),
		"REDMS_SOURCE_URL="+s.pg.URL(sourceDB), "REDMS_WAREHOUSE_URL="+s.loaderURL, "REDMS_WAREHOUSE_DIALECT="+s.dialect,
		"REDMS_VERIFY_CONFIRM_TIMEOUT=5s", "REDMS_NATS_URL="+s.nats.URL(), "REDMS_VERIFY_REPAIR_TIMEOUT=3m")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run redms-verify: %v\n%s", err, stderr.String())
	}
	_ = os.WriteFile(filepath.Join(s.logDir, fmt.Sprintf("verify-%d.json", time.Now().UnixNano())), stdout.Bytes(), 0o644)
	_ = os.WriteFile(filepath.Join(s.logDir, fmt.Sprintf("verify-%d.log", time.Now().UnixNano())), stderr.Bytes(), 0o644)
	var rep verifyReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("redms-verify exit %d wrote no JSON report (%v):\n%s\n%s", code, err, stdout.String(), stderr.String())
	}
	return rep, code, stdout.String() + stderr.String()
}

// diffLines renders the differences one line each (sorted), without the
// marker table.
func diffLines(tables []verifyTable) []string {
	var lines []string
	for _, tr := range tables {
		if tr.Table == "public."+markerTable {
			continue
		}
		if tr.Error != "" {
			lines = append(lines, tr.Table+" error "+tr.Error)
		}
		for _, d := range tr.Diffs {
			var key []string
			for _, k := range tr.Keys {
				if v, ok := d.Key[k]; ok {
					val := "NULL"
					if v != nil {
						val = fmt.Sprintf("%q", *v)
					}
					key = append(key, k+"="+val)
				}
			}
			line := fmt.Sprintf("%s %s (%s)", tr.Table, d.Kind, strings.Join(key, ", "))
			if d.Kind == "changed" {
				line += " " + strings.Join(d.Columns, ",")
			}
			if d.Count != 1 {
				line += fmt.Sprintf(" x%d", d.Count)
			}
			lines = append(lines, line)
		}
	}
	sort.Strings(lines)
	return lines
}
