package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redms/redms/pkg/testinfra/proc"
	"github.com/redms/redms/pkg/testinfra/testenv"
)

// rsemuBin is the redms-rsemu binary TestMain builds.
var rsemuBin string

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithBinaries(m, testenv.Binary{Name: "redms-rsemu", Dir: ".", Path: &rsemuBin}))
}

// TestBinary runs redms-rsemu as a process: it prints the listening line,
// serves a client configured from flags and environment, and stops on
// SIGTERM.
func TestBinary(t *testing.T) {
	pg := testenv.StartPostgres(t)
	s3 := testenv.StartS3(t)
	stdout := &proc.Log{}
	p := testenv.StartProcess(t, proc.Options{Name: "redms-rsemu", Path: rsemuBin,
		Args:   []string{"--listen", "127.0.0.1:0", "--s3-endpoint", s3.Endpoint()},
		Env:    append(os.Environ(), "REDMS_RSEMU_POSTGRES="+pg.URL("postgres")),
		Stdout: stdout})
	testenv.Eventually(t, 20*time.Second, "the first line of redms-rsemu", func() bool {
		if !p.Running() {
			t.Fatalf("redms-rsemu exited: %v\n%s", p.Err(), p.Log.String())
		}
		return strings.Contains(stdout.String(), "\n")
	})
	first, _, _ := strings.Cut(stdout.String(), "\n")
	var ready struct{ Msg, Addr string }
	if err := json.Unmarshal([]byte(first), &ready); err != nil || ready.Msg != "listening" || ready.Addr == "" {
		t.Fatalf("first line %q: %v", first, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgres://dev@"+ready.Addr+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT 41 + $1::int", 1).Scan(&n); err != nil || n != 42 {
		t.Fatalf("query: %d %v", n, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id uuid)"); err == nil {
		t.Fatal("uuid column accepted")
	}
	if err := p.Stop(20 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

func TestFlagsRequirePostgres(t *testing.T) {
	t.Setenv("REDMS_RSEMU_POSTGRES", "")
	os.Args = []string{"redms-rsemu", "--listen", "127.0.0.1:0"}
	if err := run(); err == nil {
		t.Fatal("run without a postgres url succeeded")
	}
}
