package publish

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/capture/internal/batch"
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

var hdrs = batch.NewHeaders([]string{"id"}, "primary-key", nil, nil)

// change is a change on its own subject named name: alone in a message
// with id id(name) unless batches hold several.
func change(txn *batch.Txn, name string) batch.Change {
	return batch.Change{Subject: name, Headers: hdrs, Pos: walheader.Pos{Base: 1}, LSN: 1, Data: []byte(name), Txn: txn}
}

func id(name string) string { return name + ":0/1:0" }

// txn is a chunk of one whole transaction committed at commit (0: a part
// of a spilled one) of changes on subjects names.
func txn(commit uint64, names ...string) batch.Chunk {
	t := &batch.Txn{Xid: commit}
	c := batch.Chunk{Txn: t, End: commit != 0, Commit: commit}
	for _, n := range names {
		c.Changes = append(c.Changes, change(t, n))
	}
	return c
}

func oneEach(maxInflight int) Config {
	return Config{MaxInflight: maxInflight, MaxInflightBytes: 1 << 20, Batch: batch.Config{Records: 1, Bytes: 1 << 20}}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, what, cond)
}

func run(t *testing.T, p *Publisher, in chan batch.Chunk) chan error {
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
	p := New(fs, oneEach(100), 5, slog.New(slog.DiscardHandler), Metrics{Confirmed: func(l uint64) {
		mu.Lock()
		confirmed = append(confirmed, l)
		mu.Unlock()
	}})
	in := make(chan batch.Chunk, 10)
	done := run(t, p, in)
	in <- txn(10, "a", "b")
	in <- txn(20, "c")
	in <- txn(25) // a transaction whose changes were all excluded
	spilled := txn(0, "d")
	in <- spilled
	end := txn(30, "e")
	end.Txn = spilled.Txn
	end.Changes[0].Txn = spilled.Txn
	in <- end
	if got := p.Confirmed(); got != 5 {
		t.Fatalf("confirmed %d before any ack, want the start 5", got)
	}
	fs.resolve(t, id("a"), nil)
	fs.resolve(t, id("c"), nil)
	time.Sleep(20 * time.Millisecond)
	if got := p.Confirmed(); got != 5 {
		t.Errorf("confirmed %d with b unacked, want 5", got)
	}
	fs.resolve(t, id("b"), nil)
	waitFor(t, "confirm 25", func() bool { return p.Confirmed() == 25 })
	fs.resolve(t, id("e"), nil)
	time.Sleep(20 * time.Millisecond)
	if got := p.Confirmed(); got != 25 {
		t.Errorf("confirmed %d with d (first part of a spilled transaction) unacked, want 25", got)
	}
	fs.resolve(t, id("d"), nil)
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

// TestFailureResendsOnlyWhatFailed: when a publish fails but a later one
// was stored, the failed ones are re-sent in order with their own ids and
// the stored one is not sent again (positions and prev let the loader put
// them back in order: docs/DESIGN.md §2.3).
func TestFailureResendsOnlyWhatFailed(t *testing.T) {
	fs := &fakeStream{ids: map[string]bool{}}
	retries := 0
	p := New(fs, oneEach(100), 0, slog.New(slog.DiscardHandler), Metrics{Retry: func() { retries++ }})
	p.backoffMin = time.Millisecond
	in := make(chan batch.Chunk, 10)
	done := run(t, p, in)
	in <- txn(10, "v1", "v2", "v3")
	waitFor(t, "3 publishes", func() bool { fs.mu.Lock(); defer fs.mu.Unlock(); return fs.calls == 3 })
	fs.resolve(t, id("v2"), nil) // stored before v1
	fs.resolve(t, id("v1"), errors.New("maximum bytes exceeded"))
	fs.resolve(t, id("v3"), errors.New("maximum bytes exceeded"))
	// Recovery re-sends one at a time; the first attempt of v1 fails again.
	fs.resolve(t, id("v1"), errors.New("maximum bytes exceeded"))
	fs.setAuto()
	waitFor(t, "confirm 10", func() bool { return p.Confirmed() == 10 })
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []string{id("v2"), id("v1"), id("v3")}
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
	p := New(fs, oneEach(3), 0, slog.New(slog.DiscardHandler), Metrics{})
	in := make(chan batch.Chunk, 10)
	done := run(t, p, in)
	in <- txn(7, "1", "2", "3", "4", "5", "6", "7")
	waitFor(t, "3 publishes", func() bool { fs.mu.Lock(); defer fs.mu.Unlock(); return fs.calls == 3 })
	time.Sleep(20 * time.Millisecond)
	fs.mu.Lock()
	calls := fs.calls
	fs.mu.Unlock()
	if calls != 3 {
		t.Fatalf("%d publishes with none acknowledged, bound is 3", calls)
	}
	fs.resolve(t, id("1"), nil)
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
	p := New(fs, oneEach(10), 1, slog.New(slog.DiscardHandler), Metrics{})
	in := make(chan batch.Chunk, 1)
	in <- txn(9, "x")
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

// resolveOn settles the first open publish on subject and returns its
// message.
func (s *fakeStream) resolveOn(t *testing.T, subject string, err error) *nats.Msg {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, f := range s.pending {
			if !f.done && f.msg.Subject == subject {
				s.resolveLocked(f, err)
				s.mu.Unlock()
				return f.msg
			}
		}
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no open publish on %s", subject)
	return nil
}

// batchOf is a transaction committed at commit with one change on each
// subject of subjects, at index idx of its subject.
func batchOf(commit uint64, idx uint64, subjects ...string) batch.Chunk {
	t := &batch.Txn{Xid: commit}
	c := batch.Chunk{Txn: t, End: true, Commit: commit}
	for _, s := range subjects {
		c.Changes = append(c.Changes, batch.Change{Subject: s, Headers: hdrs, Pos: walheader.Pos{Base: commit - 1, Index: idx}, LSN: commit - 1, Data: []byte(s), Txn: t})
	}
	return c
}

// TestConfirmAcrossBatches: a transaction's changes sit in batches of
// several subjects and a batch holds several transactions; a commit is
// confirmed only once every batch holding a change of it, or of an earlier
// transaction, has a PubAck — whatever order the PubAcks come in.
func TestConfirmAcrossBatches(t *testing.T) {
	fs := &fakeStream{ids: map[string]bool{}}
	cfg := Config{MaxInflight: 100, MaxInflightBytes: 1 << 20, Batch: batch.Config{Records: 2, Bytes: 1 << 20, Linger: time.Hour}}
	p := New(fs, cfg, 1, slog.New(slog.DiscardHandler), Metrics{})
	in := make(chan batch.Chunk, 10)
	done := run(t, p, in)
	in <- batchOf(10, 0, "a", "b")
	in <- batchOf(20, 0, "a", "b") // closes a's and b's batches (2 records each)
	in <- batchOf(30, 0, "a")      // stays open: an hour of linger
	a := fs.resolveOn(t, "a", nil)
	if got := a.Header.Get(walheader.Txns); !strings.HasPrefix(got, "9.0.1.10.0/A.") || !strings.Contains(got, ";13.0.1.20.0/14.") {
		t.Errorf("batch of a: %s %q, want a run of each transaction", walheader.Txns, got)
	}
	time.Sleep(20 * time.Millisecond)
	if got := p.Confirmed(); got != 1 {
		t.Errorf("confirmed %d with b's batch (changes of both transactions) unacked, want 1", got)
	}
	fs.resolveOn(t, "b", errors.New("maximum bytes exceeded"))
	time.Sleep(20 * time.Millisecond)
	if got := p.Confirmed(); got != 1 {
		t.Errorf("confirmed %d after b's batch failed, want 1", got)
	}
	fs.resolveOn(t, "b", nil) // the re-send
	waitFor(t, "confirm 20", func() bool { return p.Confirmed() == 20 })
	time.Sleep(20 * time.Millisecond)
	if got := p.Confirmed(); got != 20 {
		t.Errorf("confirmed %d with the third transaction in an open batch, want 20", got)
	}
	close(in) // closes the open batch
	fs.resolveOn(t, "a", nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := p.Confirmed(); got != 30 {
		t.Errorf("confirmed %d at the end, want 30", got)
	}
}

// TestLinger: an open batch closes after the linger time though nothing
// else arrives, and a transaction split over two batches of one subject is
// confirmed only when both have a PubAck.
func TestLinger(t *testing.T) {
	fs := &fakeStream{ids: map[string]bool{}}
	cfg := Config{MaxInflight: 100, MaxInflightBytes: 1 << 20, Batch: batch.Config{Records: 2, Bytes: 1 << 20, Linger: 50 * time.Millisecond}}
	p := New(fs, cfg, 1, slog.New(slog.DiscardHandler), Metrics{})
	in := make(chan batch.Chunk, 10)
	run(t, p, in)
	c := batchOf(10, 0, "a")
	for i := uint64(1); i < 3; i++ {
		c.Changes = append(c.Changes, batch.Change{Subject: "a", Headers: hdrs, Pos: walheader.Pos{Base: 9, Index: i}, LSN: 9, Data: []byte("a"), Txn: c.Txn})
	}
	in <- c // records 0 and 1 close at once, record 2 lingers
	first := fs.resolveOn(t, "a", nil)
	if got := first.Header.Get(walheader.MsgID); got != "a:0/9:0-0/9:1" {
		t.Errorf("first batch %q, want a:0/9:0-0/9:1", got)
	}
	time.Sleep(10 * time.Millisecond)
	if got := p.Confirmed(); got != 1 {
		t.Errorf("confirmed %d with the transaction's last change in an open batch, want 1", got)
	}
	second := fs.resolveOn(t, "a", nil) // published once the linger passed
	if got := second.Header.Get(walheader.MsgID); got != "a:0/9:2" || second.Header.Get(walheader.PrevPos) != "0/9:1" {
		t.Errorf("second batch %q prev %q, want a:0/9:2 after 0/9:1", got, second.Header.Get(walheader.PrevPos))
	}
	waitFor(t, "confirm 10", func() bool { return p.Confirmed() == 10 })
}

// TestInflightBytes: the bodies in flight stay within the byte bound; a
// message over it alone is still sent.
func TestInflightBytes(t *testing.T) {
	fs := &fakeStream{ids: map[string]bool{}}
	p := New(fs, Config{MaxInflight: 100, MaxInflightBytes: 2, Batch: batch.Config{Records: 1, Bytes: 100}}, 0, slog.New(slog.DiscardHandler), Metrics{})
	in := make(chan batch.Chunk, 10)
	done := run(t, p, in)
	in <- txn(7, "a", "b", "ccc")
	waitFor(t, "2 publishes", func() bool { fs.mu.Lock(); defer fs.mu.Unlock(); return fs.calls == 2 })
	time.Sleep(20 * time.Millisecond)
	if fs.maxOpen != 2 {
		t.Errorf("%d publishes open, want a and b (2 bytes)", fs.maxOpen)
	}
	fs.resolve(t, id("a"), nil)
	fs.resolve(t, id("b"), nil)
	fs.resolve(t, id("ccc"), nil) // 3 bytes: sent alone
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
