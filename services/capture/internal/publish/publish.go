// Package publish sends change messages to JetStream with a bounded number of
// asynchronous publishes in flight and reports the newest commit LSN up to
// which every message has a PubAck.
//
// Ordering: messages are published in the order they are handed over. When a
// publish fails, later ones may already be stored, which would reorder the
// failed change after a newer change of the same row. Recovery therefore waits
// for every publish in flight, then re-publishes, one at a time and in the
// original order, the failed message and every message after it: messages
// that had no PubAck keep their Nats-Msg-Id (so a copy the server did store is
// deduplicated); messages that were stored out of order are sent once more
// with a replay id, so the newest image of a row is again the last one in the
// stream (a replayed suffix is harmless by design).
package publish

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReplaySuffix is appended to the Nats-Msg-Id of a message re-sent after it was
// stored out of order (see the package doc).
const ReplaySuffix = ":replay"

// AsyncPublisher is what the publisher needs from jetstream.JetStream.
type AsyncPublisher interface {
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

var _ AsyncPublisher = (jetstream.JetStream)(nil)

// Batch is a run of messages of one transaction in order. Commit is non-zero on
// the batch that ends a transaction: once every message handed over up to and
// including this batch has a PubAck, Commit is confirmed. A batch may carry no
// messages (a transaction whose changes were all excluded) and only a Commit.
// Every message carries its Nats-Msg-Id header.
type Batch struct {
	Messages []*nats.Msg
	Commit   uint64
}

// Metrics receives the publisher's counters; any field may be nil.
type Metrics struct {
	Published func(msg *nats.Msg)
	Retry     func()
	Inflight  func(n int)
	Confirmed func(lsn uint64)
}

// Publisher publishes batches and tracks what is confirmed.
type Publisher struct {
	js          AsyncPublisher
	maxInflight int
	log         *slog.Logger
	metrics     Metrics
	backoffMin  time.Duration
	backoffMax  time.Duration

	confirmed atomic.Uint64
	fifo      []entry
	head      int // index of the first entry not yet popped
}

type entry struct {
	msg    *nats.Msg
	fut    jetstream.PubAckFuture
	err    error // set when the publish call itself failed
	acked  bool
	commit uint64
}

// New returns a publisher that keeps at most maxInflight publishes awaiting a
// PubAck. start is the position already confirmed (the slot's confirmed flush).
func New(js AsyncPublisher, maxInflight int, start uint64, log *slog.Logger, m Metrics) *Publisher {
	if maxInflight < 1 {
		maxInflight = 1
	}
	p := &Publisher{js: js, maxInflight: maxInflight, log: log, metrics: m,
		backoffMin: 50 * time.Millisecond, backoffMax: 5 * time.Second}
	p.confirmed.Store(start)
	return p
}

// Confirmed returns the newest commit LSN whose transaction, and every earlier
// one handed over, has a PubAck for each of its messages.
func (p *Publisher) Confirmed() uint64 { return p.confirmed.Load() }

// Run publishes every batch read from in until in is closed and everything
// handed over has a PubAck (then it returns nil), or ctx ends (then it
// returns ctx's error and whatever was not acknowledged stays unconfirmed).
func (p *Publisher) Run(ctx context.Context, in <-chan Batch) error {
	var (
		cur    Batch
		curPos int
		hasCur bool
		closed bool
	)
	for {
		p.pop()
		// Publish as much of the current batch as the in-flight bound allows.
		for hasCur && p.inflight() < p.maxInflight {
			if curPos < len(cur.Messages) {
				m := cur.Messages[curPos]
				curPos++
				e := entry{msg: m}
				if curPos == len(cur.Messages) {
					e.commit = cur.Commit
				}
				// m carries its Nats-Msg-Id header already (what WithMsgID
				// would set): passing WithMsgID too makes nats.go assign the
				// header again, which grows the full header map — measured
				// at ~0.35 µs and 3 allocations per change. Re-sends below
				// use WithMsgID.
				e.fut, e.err = p.js.PublishMsgAsync(m)
				p.fifo = append(p.fifo, e)
				continue
			}
			if len(cur.Messages) == 0 && cur.Commit != 0 {
				p.fifo = append(p.fifo, entry{acked: true, commit: cur.Commit})
			}
			hasCur = false
		}
		p.pop()
		if closed && !hasCur && p.inflight() == 0 {
			return nil
		}

		var inCh <-chan Batch
		if !hasCur && !closed {
			inCh = in
		}
		var okCh <-chan *jetstream.PubAck
		var errCh <-chan error
		if p.inflight() > 0 {
			h := &p.fifo[p.head]
			if h.err != nil {
				if err := p.recover(ctx); err != nil {
					return err
				}
				continue
			}
			okCh, errCh = h.fut.Ok(), h.fut.Err()
		}
		select {
		case b, ok := <-inCh:
			if !ok {
				closed = true
				continue
			}
			cur, curPos, hasCur = b, 0, true
		case <-okCh:
			p.fifo[p.head].acked = true
			p.published(p.fifo[p.head].msg)
		case err := <-errCh:
			p.fifo[p.head].err = err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *Publisher) inflight() int { return len(p.fifo) - p.head }

// pop removes acknowledged entries from the front and advances Confirmed.
func (p *Publisher) pop() {
	for p.head < len(p.fifo) && p.fifo[p.head].acked {
		if c := p.fifo[p.head].commit; c > p.confirmed.Load() {
			p.confirmed.Store(c)
			if p.metrics.Confirmed != nil {
				p.metrics.Confirmed(c)
			}
		}
		p.fifo[p.head] = entry{}
		p.head++
	}
	if p.head == len(p.fifo) {
		p.fifo, p.head = p.fifo[:0], 0
	} else if p.head > 4096 && p.head*2 > len(p.fifo) {
		n := copy(p.fifo, p.fifo[p.head:])
		clear(p.fifo[n:])
		p.fifo, p.head = p.fifo[:n], 0
	}
	if p.metrics.Inflight != nil {
		p.metrics.Inflight(p.inflight())
	}
}

func (p *Publisher) published(m *nats.Msg) {
	if m != nil && p.metrics.Published != nil {
		p.metrics.Published(m)
	}
}

// recover runs when the oldest message in flight failed: see the package doc.
func (p *Publisher) recover(ctx context.Context) error {
	first := p.fifo[p.head]
	p.log.Warn("publish failed, re-sending in order", "subject", first.msg.Subject,
		"msg_id", first.msg.Header.Get(jetstream.MsgIDHeader), "inflight", p.inflight(), "err", first.err)
	// Let every publish in flight settle.
	for i := p.head; i < len(p.fifo); i++ {
		e := &p.fifo[i]
		if e.acked || e.err != nil {
			continue
		}
		select {
		case <-e.fut.Ok():
			e.acked = true
			p.published(e.msg)
		case err := <-e.fut.Err():
			e.err = err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Re-send from the first failure on, one at a time, in order.
	for i := p.head; i < len(p.fifo); i++ {
		e := &p.fifo[i]
		if e.msg == nil {
			continue
		}
		id := e.msg.Header.Get(jetstream.MsgIDHeader)
		if e.acked {
			id += ReplaySuffix
		}
		if !e.acked && p.metrics.Retry != nil {
			p.metrics.Retry()
		}
		msg := e.msg
		if e.acked {
			msg = &nats.Msg{Subject: e.msg.Subject, Data: e.msg.Data, Header: cloneHeader(e.msg.Header)}
			msg.Header.Set(jetstream.MsgIDHeader, id)
		}
		if err := p.publishSync(ctx, msg, id); err != nil {
			return err
		}
		if !e.acked {
			p.published(e.msg)
		}
		e.acked, e.err = true, nil
	}
	p.pop()
	return nil
}

// publishSync publishes one message and waits for its PubAck, retrying with
// backoff until it gets one or ctx ends.
func (p *Publisher) publishSync(ctx context.Context, msg *nats.Msg, id string) error {
	wait := p.backoffMin
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if p.metrics.Retry != nil {
				p.metrics.Retry()
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
			wait = min(wait*2, p.backoffMax)
		}
		fut, err := p.js.PublishMsgAsync(msg, jetstream.WithMsgID(id))
		if err == nil {
			select {
			case <-fut.Ok():
				return nil
			case err = <-fut.Err():
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.log.Warn("publish retry", "subject", msg.Subject, "msg_id", id, "attempt", attempt+1, "err", err)
	}
}

func cloneHeader(h nats.Header) nats.Header {
	c := make(nats.Header, len(h))
	for k, v := range h {
		c[k] = append([]string(nil), v...)
	}
	return c
}
