package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redms/redms/pkg/testenv"
)

// TestBinary runs redms-rsemu as a process: it prints the listening line,
// serves a client configured from flags and environment, and stops on
// SIGTERM.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "redms-rsemu")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pg := testenv.StartPostgres(t)
	s3 := testenv.StartS3(t)
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--s3-endpoint", s3.Endpoint())
	cmd.Env = append(os.Environ(), "REDMS_RSEMU_POSTGRES="+pg.URL("postgres"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("no output from redms-rsemu: %v", lines.Err())
	}
	var ready struct{ Msg, Addr string }
	if err := json.Unmarshal(lines.Bytes(), &ready); err != nil || ready.Msg != "listening" || ready.Addr == "" {
		t.Fatalf("first line %q: %v", lines.Text(), err)
	}
	go func() {
		for lines.Scan() {
		}
		done <- cmd.Wait()
	}()
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
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("redms-rsemu did not stop on SIGTERM")
	}
	done <- nil // for the cleanup
}

func TestFlagsRequirePostgres(t *testing.T) {
	t.Setenv("REDMS_RSEMU_POSTGRES", "")
	os.Args = []string{"redms-rsemu", "--listen", "127.0.0.1:0"}
	if err := run(); err == nil {
		t.Fatal("run without a postgres url succeeded")
	}
}
