package service

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getsentry/sentry-go"
)

// sentryServer is a local endpoint that takes Sentry envelopes and keeps
// their events.
type sentryServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events []map[string]any
}

func startSentryServer(t *testing.T) *sentryServer {
	t.Helper()
	s := &sentryServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, _ := io.ReadAll(body)
		if !strings.HasSuffix(r.URL.Path, "/api/1/envelope/") {
			t.Errorf("sentry request to %s, want /api/1/envelope/", r.URL.Path)
		}
		// An envelope: a header line, then item header and payload lines.
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		var lines [][]byte
		for sc.Scan() {
			lines = append(lines, append([]byte{}, sc.Bytes()...))
		}
		for i := 1; i+1 < len(lines); i += 2 {
			var item struct{ Type string }
			if json.Unmarshal(lines[i], &item) != nil || item.Type != "event" {
				continue
			}
			var ev map[string]any
			if err := json.Unmarshal(lines[i+1], &ev); err != nil {
				t.Errorf("event payload: %v", err)
				continue
			}
			s.mu.Lock()
			s.events = append(s.events, ev)
			s.mu.Unlock()
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sentryServer) dsn() string {
	return "http://key@" + strings.TrimPrefix(s.srv.URL, "http://") + "/1"
}

func (s *sentryServer) received() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any{}, s.events...)
}

// initSentry points the process's Sentry client at s and turns it off again
// when the test ends.
func initSentry(t *testing.T, s *sentryServer) func() {
	t.Helper()
	flush, err := InitSentry(s.dsn(), "test-release", map[string]string{"service": "redms-loader"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sentry.CurrentHub().BindClient(nil)
		sentry.CurrentHub().Scope().Clear()
	})
	return flush
}

func tagsOf(ev map[string]any) map[string]string {
	out := map[string]string{}
	switch tags := ev["tags"].(type) {
	case map[string]any:
		for k, v := range tags {
			out[k], _ = v.(string)
		}
	}
	return out
}

func TestSentryHandlerReportsErrorLines(t *testing.T) {
	s := startSentryServer(t)
	flush := initSentry(t, s)
	var out bytes.Buffer
	log := slog.New(SentryHandler(slog.NewJSONHandler(&out, nil))).With("replica", "loader-2")
	log.Info("window applied", "table", "public.a")
	log.Error("table parked", "table", "public.b", "lsn", "0/1", "reason", "bad", "err", errors.New("boom"))
	flush()
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Errorf("wrapped handler wrote %d lines, want 2:\n%s", n, out.String())
	}
	evs := s.received()
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1 (only the Error line)", len(evs))
	}
	tags := tagsOf(evs[0])
	if tags["table"] != "public.b" || tags["lsn"] != "0/1" || tags["replica"] != "loader-2" || tags["service"] != "redms-loader" {
		t.Errorf("tags %v", tags)
	}
	if evs[0]["release"] != "test-release" || evs[0]["level"] != "error" {
		t.Errorf("release %v level %v", evs[0]["release"], evs[0]["level"])
	}
	contexts, _ := evs[0]["contexts"].(map[string]any)
	logCtx, _ := contexts["log"].(map[string]any)
	if logCtx["reason"] != "bad" {
		t.Errorf("contexts %v", contexts)
	}
	if _, ok := evs[0]["exception"]; !ok {
		t.Error("error attribute not sent as the exception")
	}
}

func TestReportPanic(t *testing.T) {
	s := startSentryServer(t)
	flush := initSentry(t, s)
	func() {
		defer func() {
			if r := recover(); r != nil {
				ReportPanic(r)
			}
		}()
		panic(errors.New("boom"))
	}()
	flush()
	evs := s.received()
	if len(evs) != 1 || evs[0]["level"] != "fatal" {
		t.Fatalf("events %v", evs)
	}
}

// TestSentryOff: with no DSN nothing is sent and nothing fails.
func TestSentryOff(t *testing.T) {
	s := startSentryServer(t)
	flush, err := InitSentry("", "r", nil)
	if err != nil {
		t.Fatal(err)
	}
	slog.New(SentryHandler(slog.DiscardHandler)).Error("boom")
	flush()
	if n := len(s.received()); n != 0 {
		t.Errorf("sent %d events with Sentry off", n)
	}
}
