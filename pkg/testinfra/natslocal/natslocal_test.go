package natslocal

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// lockedBuffer is a bytes.Buffer safe for the server's log goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func TestRestartKeepsFileStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var logs lockedBuffer
	s, err := Start(ctx, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Remove(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(s.StoreDir()); !os.IsNotExist(err) {
			t.Errorf("store dir %s left behind (stat: %v)", s.StoreDir(), err)
		}
	})
	url, port := s.URL(), s.Port()

	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "WAL", Subjects: []string{"redms.wal.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "redms.wal.db.public.t", []byte("hello")); err != nil {
		t.Fatal(err)
	}

	s.Stop()
	if s.Running() {
		t.Fatal("Running() after Stop")
	}
	if _, err := nats.Connect(url, nats.MaxReconnects(0), nats.Timeout(time.Second)); err == nil {
		t.Fatal("connected to a stopped server")
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Port() != port || s.URL() != url {
		t.Fatalf("restart moved the server: %s → %s", url, s.URL())
	}

	// The old connection reconnects by itself; the message is still stored.
	var msg *jetstream.RawStreamMsg
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		stream, err := js.Stream(ctx, "WAL")
		if err == nil {
			msg, err = stream.GetMsg(ctx, 1)
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream message after restart: %v", err)
		}
	}
	if string(msg.Data) != "hello" || msg.Subject != "redms.wal.db.public.t" {
		t.Fatalf("message after restart = %q on %q", msg.Data, msg.Subject)
	}
	if logs.Len() == 0 {
		t.Error("Options.Logger received no server log lines")
	}
}

func TestStartOnChosenPortAndStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := Start(ctx, Options{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Remove()
	// A second server on the same port must fail, not silently move.
	if b, err := Start(ctx, Options{Port: a.Port(), StoreDir: t.TempDir()}); err == nil {
		b.Remove()
		t.Fatalf("second server started on taken port %d", a.Port())
	}
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("Remove deleted a store dir it did not create: %v", err)
	}
}

func TestMaxPayload(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		max  int32
		want int64
	}{{0, 1 << 20}, {4 << 20, 4 << 20}} {
		s, err := Start(ctx, Options{MaxPayload: tc.max})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(s.URL())
		if err != nil {
			t.Fatal(err)
		}
		if got := nc.MaxPayload(); got != tc.want {
			t.Errorf("MaxPayload %d: server announces %d, want %d", tc.max, got, tc.want)
		}
		nc.Close()
		if err := s.Remove(); err != nil {
			t.Fatal(err)
		}
	}
}
