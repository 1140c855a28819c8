// Package e2e runs the redms binaries as separate processes against real
// servers (ephemeral Postgres, embedded NATS JetStream, an S3-compatible
// server, the Redshift emulator), drives a seeded workload through them while
// killing loaders, and judges the warehouse row by row with pkg/verify.
//
// Run it from the repository root with
//
//	cd e2e && GOWORK=off go test -race -count=1 -v .
//
// REDMS_E2E_SEED and REDMS_E2E_DURATION (a Go duration, default 60s) override
// the seed and the workload length for local runs; REDMS_E2E_LOGDIR keeps the
// processes' logs and the workload's statement trace there instead of a temp
// dir (removed when the test passes, kept and named when it fails);
// REDMS_E2E_BINDIR uses the redms-* binaries found there instead of building.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binaries are the service binaries TestMain builds, by short name.
var binaries = struct {
	dir  string
	errs map[string]error
}{errs: map[string]error{}}

var services = []string{"capture", "loader", "rsemu"}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if dir := os.Getenv("REDMS_E2E_BINDIR"); dir != "" {
		binaries.dir = dir
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "redms-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "make binary dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binaries.dir = dir
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, s := range services {
		binaries.errs[s] = build(root, s, dir)
	}
	return m.Run()
}

// repoRoot walks up from the working directory to the directory holding
// services/ and go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if fi, err := os.Stat(filepath.Join(dir, "services")); err == nil && fi.IsDir() {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find repository root: no services/ above %s", dir)
		}
		dir = parent
	}
}

func build(root, service, dir string) error {
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "redms-"+service), ".")
	cmd.Dir = filepath.Join(root, "services", service)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build in services/%s: %w\n%s", service, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// binary is the path of redms-<service>, or fails the test saying why it
// could not be built.
func binary(t testing.TB, service string) string {
	t.Helper()
	if err := binaries.errs[service]; err != nil {
		t.Fatalf("redms-%s is not available, so the end-to-end test cannot run: %v", service, err)
	}
	return filepath.Join(binaries.dir, "redms-"+service)
}
