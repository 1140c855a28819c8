package testenv

import (
	"strings"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/proc"
)

func TestStartProcessKeepsStdoutApart(t *testing.T) {
	var stdout proc.Log
	p := StartProcess(t, proc.Options{Name: "sh", Path: "/bin/sh", Args: []string{"-c", "echo out; echo err >&2; exit 4"}, Stdout: &stdout})
	if err := p.WaitExit(time.Minute); err == nil || p.ExitCode() != 4 {
		t.Fatalf("exit %v code %d, want code 4", err, p.ExitCode())
	}
	if stdout.String() != "out\n" || p.Log.String() != "err\n" {
		t.Fatalf("stdout %q, log %q", stdout.String(), p.Log.String())
	}
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, time.Minute, "the third call", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
}

func TestServiceDir(t *testing.T) {
	dir, err := ServiceDir("capture")
	if err != nil || !strings.HasSuffix(dir, "/services/capture") {
		t.Fatalf("ServiceDir = %q, %v", dir, err)
	}
}
