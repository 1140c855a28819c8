package pgcluster

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestHelperStartAndBlock is not a test: TestServerDiesWithItsParent runs the
// test binary with it as a child that starts a cluster and waits to be killed.
func TestHelperStartAndBlock(t *testing.T) {
	dir := os.Getenv("REDMS_PGCLUSTER_HELPER_DIR")
	if dir == "" {
		return
	}
	bin, err := FindBinDir()
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	c, err := Start(context.Background(), Options{BinDir: bin, Dir: dir})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(c.URL("postgres"), c.PID())
	select {}
}

func TestServerDiesWithItsParent(t *testing.T) {
	if _, err := FindBinDir(); err != nil {
		t.Fatalf("%v: install the Postgres server binaries: apt-get install postgresql", err)
	}
	dir, err := os.MkdirTemp("", "redms-pg-orphan-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStartAndBlock$")
	cmd.Env = append(os.Environ(), "REDMS_PGCLUSTER_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper gave no URL: %v (%q)", err, line)
	}
	fields := strings.Fields(line)
	if len(fields) != 2 || !strings.HasPrefix(fields[0], "postgres://") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper said %q", line)
	}
	url := fields[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatalf("cluster of the helper is not up: %v", err)
	}
	conn.Close(ctx)

	// SIGKILL leaves the helper no chance to clean up: only the kernel's
	// parent-death signal can stop the server now.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for {
		c, err := pgconn.Connect(ctx, url)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("server still up a minute after its parent was killed")
			}
			return // refused: the server is gone
		}
		c.Close(ctx)
		time.Sleep(20 * time.Millisecond)
	}
}
