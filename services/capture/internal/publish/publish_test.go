package publish

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fakeStream is a JetStream stand-in whose PubAcks the test releases one by
// one. A success stores the message unless its Nats-Msg-Id was stored before.
type fakeStream struct {
	mu      sync.Mutex
	stored  []string
	ids     map[string]bool
	pending []*fakeFuture
	auto    bool // acknowledge new publishes at once
	calls   int
	maxOpen int
}

type fakeFuture struct {
	msg  *nats.Msg
	ok   chan *jetstream.PubAck
	err  chan error
	done bool
}

func (f *fakeFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *fakeFuture) Err() <-chan error            { return f.err }
func (f *fakeFuture) Msg() *nats.Msg               { return f.msg }

var _ AsyncPublisher = (*fakeStream)(nil)

func (s *fakeStream) PublishMsgAsync(m *nats.Msg, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	f := &fakeFuture{msg: m, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	s.pending = append(s.pending, f)
	open := 0
	for _, p := range s.pending {
		if !p.done {
			open++
		}
	}
	s.maxOpen = max(s.maxOpen, open)
	if s.auto {
		s.resolveLocked(f, nil)
	}
	return f, nil
}

func (s *fakeStream) resolveLocked(f *fakeFuture, err error) {
	f.done = true
	if err != nil {
		f.err <- err
		return
	}
	id := f.msg.Header.Get(jetstream.MsgIDHeader)
	if !s.ids[id] {
		s.ids[id] = true
		s.stored = append(s.stored, id)
	}
	f.ok <- &jetstream.PubAck{}
}

// resolve settles the publish of the message with id (its first open one).
func (s *fakeStream) resolve(t *testing.T, id string, err error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, f := range s.pending {
			if !f.done && f.msg.Header.Get(jetstream.MsgIDHeader) == id {
				s.resolveLocked(f, err)
				s.mu.Unlock()
				return
			}
		}
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no open publish of %s", id)
}

func (s *fakeStream) setAuto() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auto = true
	for _, f := range s.pending {
		if !f.done {
			s.resolveLocked(f, nil)
		}
	}
}

func (s *fakeStream) storedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.stored)
}

func msg(id string) *nats.Msg {
	return &nats.Msg{Subject: "redms.wal.db.public.t", Header: nats.Header{jetstream.MsgIDHeader: {id}}}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func run(t *testing.T, p *Publisher, in chan Batch) chan error {
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // a test that fails half-way leaves no publisher behind
	go func() { done <- p.Run(ctx, in) }()
	return done
}

// TestConfirmOnlyWhatIsAcked: the confirmed position is the commit of the
// newest transaction whose messages, and all earlier ones, have a PubAck.
func TestConfirmOnlyWhatIsAcked(t *testing.T) {
	fs := &fakeStream{ids: map[string]bool{}}
	var confirmed []uint64
	var mu sync.Mutex
	p := New(fs, 100, 5, slog.New(slog.DiscardHandler), Metrics{Confirmed: func(l uint64) {
		mu.Lock()
		confirmed = append(confirmed, l)
		mu.Unlock()
	}})
	in := make(chan Batch, 10)
	done := run(t, p, in)
	in <- Batch{Messages: []*nats.Msg{msg("a"), msg("b")}, Commit: 10}
	in <- Batch{Messages: []*nats.Msg{msg("c")}, Commit: 20}
	in <- Batch{Commit: 25} // a transaction whose changes were all excluded
	in <- Batch{Messages: []*nats.Msg{msg("d")}}
	in <- Batch{Messages: []*nats.Msg{msg("e")}, Commit: 30}
	if got := p.Confirmed(); got != 5 {
		t.Fatalf("confirmed %d before any ack, want the start 5", got)
	}
	fs.resolve(t, "a", nil)
	fs.resolve(t, "c", nil)
	time.Sleep(20 * time.Millisecond)
	if got := p.Confirmed(); got != 5 {
		t.Errorf("confirmed %d with b unacked, want 5", got)
	}
	fs.resolve(t, "b", nil)
	waitFor(t, "confirm 25", func() bool { return p.Confirmed() == 25 })
	fs.resolve(t, "e", nil)
	time.Sleep(20 * time.Millisecond)
	if got := p.Confirmed(); got != 25 {
		t.Errorf("confirmed %d with d (first part of a spilled transaction) unacked, want 25", got)
	}
	fs.resolve(t, "d", nil)
	waitFor(t, "confirm 30", func() bool { return p.Confirmed() == 30 })
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := fs.storedIDs(); len(got) != 5 {
		t.Errorf("stored %v, want a to e", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.IsSorted(confirmed) {
		t.Errorf("confirmed went backwards: %v", confirmed)
	}
}

// TestFailureKeepsRowOrder: when a publish fails but a later one was
// stored, the failed one is re-sent and the later one is sent again after
// it (with a replay id), so the newest change is the last in the stream.
func TestFailureKeepsRowOrder(t *testing.T) {
	fs := &fakeStream{ids: map[string]bool{}}
	retries := 0
	p := New(fs, 100, 0, slog.New(slog.DiscardHandler), Metrics{Retry: func() { retries++ }})
	p.backoffMin = time.Millisecond
	in := make(chan Batch, 10)
	done := run(t, p, in)
	in <- Batch{Messages: []*nats.Msg{msg("v1"), msg("v2"), msg("v3")}, Commit: 10}
	waitFor(t, "3 publishes", func() bool { fs.mu.Lock(); defer fs.mu.Unlock(); return fs.calls == 3 })
	fs.resolve(t, "v2", nil) // stored before v1
	fs.resolve(t, "v1", errors.New("maximum bytes exceeded"))
	fs.resolve(t, "v3", errors.New("maximum bytes exceeded"))
	// Recovery re-sends one at a time; the first attempt of v1 fails again.
	fs.resolve(t, "v1", errors.New("maximum bytes exceeded"))
	fs.setAuto()
	waitFor(t, "confirm 10", func() bool { return p.Confirmed() == 10 })
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []string{"v2", "v1", "v2" + ReplaySuffix, "v3"}
	if got := fs.storedIDs(); !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
	if retries != 3 { // v1 twice, v3 once
		t.Errorf("%d retries counted, want 3", retries)
	}
}

// TestInflightBound: never more publishes awaiting a PubAck than the bound.
func TestInflightBound(t *testing.T) {
	fs := &fakeStream{ids: map[string]bool{}}
	p := New(fs, 3, 0, slog.New(slog.DiscardHandler), Metrics{})
	in := make(chan Batch, 10)
	done := run(t, p, in)
	var ms []*nats.Msg
	for _, id := range []string{"1", "2", "3", "4", "5", "6", "7"} {
		ms = append(ms, msg(id))
	}
	in <- Batch{Messages: ms, Commit: 7}
	waitFor(t, "3 publishes", func() bool { fs.mu.Lock(); defer fs.mu.Unlock(); return fs.calls == 3 })
	time.Sleep(20 * time.Millisecond)
	fs.mu.Lock()
	calls := fs.calls
	fs.mu.Unlock()
	if calls != 3 {
		t.Fatalf("%d publishes with none acknowledged, bound is 3", calls)
	}
	fs.resolve(t, "1", nil)
	waitFor(t, "4th publish", func() bool { fs.mu.Lock(); defer fs.mu.Unlock(); return fs.calls == 4 })
	fs.setAuto()
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fs.maxOpen > 3 {
		t.Errorf("%d publishes open at once, bound is 3", fs.maxOpen)
	}
	if p.Confirmed() != 7 {
		t.Errorf("confirmed %d, want 7", p.Confirmed())
	}
}

// TestShutdownDeadline: Run returns when ctx ends even with publishes open,
// and what is open stays unconfirmed.
func TestShutdownDeadline(t *testing.T) {
	fs := &fakeStream{ids: map[string]bool{}}
	p := New(fs, 10, 1, slog.New(slog.DiscardHandler), Metrics{})
	in := make(chan Batch, 1)
	in <- Batch{Messages: []*nats.Msg{msg("x")}, Commit: 9}
	close(in)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Run(ctx, in); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want deadline exceeded", err)
	}
	if p.Confirmed() != 1 {
		t.Errorf("confirmed %d, want the start 1", p.Confirmed())
	}
}
