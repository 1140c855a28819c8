// Package e2e runs the redms binaries as separate processes against real
// servers (ephemeral Postgres, embedded NATS JetStream, an S3-compatible
// server, the Redshift emulator), drives a seeded workload through them while
// killing loaders, and judges the warehouse row by row with pkg/demo/verify.
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
// The fault soak (TestSoak) takes REDMS_SOAK_DURATION (default 2m) and
// REDMS_SOAK_SEED.
package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

// binaries are the service binaries TestMain builds, by short name.
var binaries = struct {
	dir  string
	errs map[string]error
}{errs: map[string]error{}}

var services = []string{"capture", "loader", "rsemu", "verify"}

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
	for _, s := range services {
		src, err := testenv.ServiceDir(s)
		if err == nil {
			err = testenv.Build(src, filepath.Join(dir, "redms-"+s))
		}
		binaries.errs[s] = err
	}
	return m.Run()
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
