package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "WARN")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "table", "public.t", "lsn", "0/1")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log output is not one JSON record: %v\n%s", err, buf.String())
	}
	if rec["msg"] != "shown" || rec["table"] != "public.t" || rec["lsn"] != "0/1" || rec["level"] != "WARN" {
		t.Fatalf("record = %v", rec)
	}
	for _, ok := range []string{"", "debug", "info", "warn", "warning", "error", "Info"} {
		if _, err := NewLogger(io.Discard, ok); err != nil {
			t.Errorf("NewLogger(%q): %v", ok, err)
		}
	}
	if _, err := NewLogger(io.Discard, "loud"); err == nil {
		t.Error("NewLogger(loud) succeeded")
	}
}

// sleepPast waits until at least d has passed on the wall clock.
func sleepPast(d time.Duration) {
	for start := time.Now(); time.Since(start) <= d; {
		time.Sleep(time.Millisecond)
	}
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestServerEndpoints(t *testing.T) {
	reg := NewRegistry()
	promauto.With(reg).NewCounter(prometheus.CounterOpts{Name: "redms_test_events_total", Help: "test"}).Add(3)
	var h Health
	srv := NewServer(":0", reg, &h)

	if code, _ := get(t, srv.Handler, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", code)
	}
	if code, body := get(t, srv.Handler, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before SetReady = %d %q, want 503", code, body)
	}
	h.SetReady(true)
	if code, _ := get(t, srv.Handler, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after SetReady(true) = %d, want 200", code)
	}
	h.SetReady(false)
	if code, _ := get(t, srv.Handler, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz after SetReady(false) = %d, want 503", code)
	}
	beat := h.Heartbeat("window loop", time.Hour)
	if code, _ := get(t, srv.Handler, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with a fresh heartbeat = %d, want 200", code)
	}
	stuck := h.Heartbeat("coordinator", time.Nanosecond)
	sleepPast(time.Nanosecond)
	if code, body := get(t, srv.Handler, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "coordinator") || strings.Contains(body, "window loop") {
		t.Errorf("/healthz with a stale heartbeat = %d %q, want 503 naming coordinator only", code, body)
	}
	stuck.Stop()
	beat.Beat()
	if code, _ := get(t, srv.Handler, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after the stale heartbeat stopped = %d, want 200", code)
	}

	code, body := get(t, srv.Handler, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{"redms_test_events_total 3", "go_goroutines", "process_"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get(t, srv.Handler, "/nope"); code != http.StatusNotFound {
		t.Errorf("/nope = %d, want 404", code)
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var h Health
	h.SetReady(true)
	srv := NewServer(l.Addr().String(), NewRegistry(), &h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, srv, l, 5*time.Second) }()

	resp, err := http.Get("http://" + l.Addr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz over HTTP = %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after its context was cancelled")
	}
	if _, err := http.Get("http://" + l.Addr().String() + "/healthz"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
}

func TestServeReportsListenError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := NewServer(l.Addr().String(), NewRegistry(), &Health{})
	err = Serve(context.Background(), srv, time.Second)
	if err == nil {
		t.Fatal("Serve on a taken address returned nil")
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("Serve error %v does not wrap the *net.OpError", err)
	}
}
