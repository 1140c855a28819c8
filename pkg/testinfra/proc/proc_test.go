package proc

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func sh(t *testing.T, script string, out *Log) *Process {
	t.Helper()
	o := Options{Name: "sh", Path: "/bin/sh", Args: []string{"-c", script}}
	if out != nil {
		o.Stdout, o.Stderr = out, out
	}
	p, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

func TestExitCodeAndLog(t *testing.T) {
	var log Log
	p := sh(t, "echo one; echo two >&2; exit 3", &log)
	if !p.Wait(time.Minute) {
		t.Fatal("sh did not exit")
	}
	if p.ExitCode() != 3 || p.Err() == nil || p.Running() {
		t.Fatalf("exit code %d, err %v, running %v", p.ExitCode(), p.Err(), p.Running())
	}
	if got := log.String(); got != "one\ntwo\n" {
		t.Fatalf("log %q", got)
	}
}

func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	var log Log
	p := sh(t, `trap "" TERM; echo trapped; while :; do sleep 1; done`, &log)
	waitFor(t, func() bool { return strings.Contains(log.String(), "trapped") })
	err := p.Stop(100 * time.Millisecond)
	if !errors.Is(err, ErrKilled) || p.ExitCode() != 128+int(syscall.SIGKILL) {
		t.Fatalf("Stop = %v, exit code %d; want ErrKilled and 137", err, p.ExitCode())
	}
	if err := p.Stop(time.Second); err == nil {
		t.Fatal("Stop of an exited process forgot its exit error")
	}
}

func TestStopCleanExit(t *testing.T) {
	var log Log
	p := sh(t, `trap "exit 0" TERM; echo up; while :; do sleep 0.1; done`, &log)
	waitFor(t, func() bool { return strings.Contains(log.String(), "up") })
	if err := p.Stop(time.Minute); err != nil {
		t.Fatalf("Stop = %v, want a clean exit", err)
	}
}

func TestPauseResume(t *testing.T) {
	p := sh(t, "while :; do sleep 0.1; done", nil)
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return state(t, p.PID()) == "T" })
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return state(t, p.PID()) != "T" })
}

func TestWaitReadyFailsWhenTheProcessExits(t *testing.T) {
	p := sh(t, "exit 2", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := p.WaitReady(ctx, "http://127.0.0.1:1/readyz")
	if !errors.Is(err, ErrExited) {
		t.Fatalf("WaitReady = %v, want ErrExited", err)
	}
}

func TestTailAndGrep(t *testing.T) {
	text := "a 1\nb 2\nc 3\n" + strings.Repeat("x", 700) + "\n"
	if got := Tail(text, 2); got != "c 3\n"+strings.Repeat("x", 600)+"…" {
		t.Errorf("Tail = %q", got)
	}
	if got := Grep(text, 5, "b", "c"); len(got) != 2 || got[0] != "b 2" || got[1] != "c 3" {
		t.Errorf("Grep = %q", got)
	}
	if got := Grep(text, 1, "a", "b"); len(got) != 1 {
		t.Errorf("Grep with n=1 = %q", got)
	}
}

// state is the process state letter of /proc/pid/stat (T = stopped).
func state(t *testing.T, pid int) string {
	t.Helper()
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return fields[0]
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
