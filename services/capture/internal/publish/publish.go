// Package publish sends the batches of changes (internal/batch) to
// JetStream with a bounded number of asynchronous publishes in flight and
// reports the newest commit LSN up to which every change has a PubAck.
//
// Confirming (docs/DESIGN.md §2.1): a transaction's changes may sit in
// batches of several subjects, closed and acknowledged in any order. Each
// transaction counts its changes without a PubAck; transactions are
// confirmed in the order they were handed over, each once it has ended
// and its count is zero, so the confirmed position never passes a change
// that has no PubAck. An open batch delays that by at most its linger.
//
// Ordering: messages are published in the order they close. When a
// publish fails, later ones may already be stored: the stream then holds a
// newer change of a row before an older one. That is safe because every
// message carries its source positions and the last position of the
// message published before it on its subject (prev, docs/DESIGN.md §2.3):
// the loader orders by position and holds everything from the first
// message whose prev it has not seen until that one arrives. Recovery
// therefore waits for every publish in flight to settle, then re-sends,
// one at a time and in the original order, exactly the messages that have
// no PubAck, each with its original Nats-Msg-Id (so a copy the server did
// store is deduplicated). Messages that were stored are not sent again.
package publish

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/natsconn"
	"github.com/redms/redms/pkg/service"

	"github.com/redms/redms/services/capture/internal/batch"
)

// AsyncPublisher is what the publisher needs from jetstream.JetStream.
type AsyncPublisher interface {
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

var _ AsyncPublisher = (jetstream.JetStream)(nil)

// Config bounds what is in flight and says how batches close.
type Config struct {
	// MaxInflight bounds the publishes awaiting a PubAck.
	MaxInflight int
	// MaxInflightBytes bounds their bodies' bytes (a larger message is
	// still sent, alone).
	MaxInflightBytes int
	Batch            batch.Config
	// Unanswered, when set, is called each time a re-sent publish got no
	// answer from the stream (no responders, a PubAck timeout): the server
	// may be cut off from the cluster, and the caller may move to another.
	Unanswered func(err error)
}

// errDupInProcess is JetStream's "duplicate message id is in process": the
// stream leader holds an earlier copy it has not committed, as a leader
// cut off from its followers does for good.
const errDupInProcess jetstream.ErrorCode = 10158

// unanswered reports whether err says the stream did not answer (or took
// the message but cannot commit it), rather than answered with an error (a
// full stream, a mismatch).
func unanswered(err error) bool {
	var apiErr *jetstream.APIError
	return natsconn.Unanswered(err) || (errors.As(err, &apiErr) && apiErr.ErrorCode == errDupInProcess)
}

// Metrics receives the publisher's counters; any field may be nil.
type Metrics struct {
	// Published counts changes with a PubAck (a part counts as one).
	Published func(subject string, changes int)
	Retry     func()
	Inflight  func(n int)
	Confirmed func(lsn uint64)
}

// Publisher batches changes, publishes the batches and tracks what is
// confirmed.
type Publisher struct {
	js         AsyncPublisher
	cfg        Config
	log        *slog.Logger
	metrics    Metrics
	backoffMin time.Duration
	backoffMax time.Duration
	batcher    *batch.Batcher

	confirmed atomic.Uint64
	fifo      []entry // publishes in the order they were sent
	head      int     // index of the first entry not yet popped
	bytes     int     // body bytes of the publishes without PubAck

	txns    []*batch.Txn // in the order they were handed over
	txnHead int
	session uint64
}

type entry struct {
	m     batch.Message
	fut   jetstream.PubAckFuture
	err   error // set when the publish failed
	acked bool
}

// New returns a publisher; start is the position already confirmed (the
// slot's confirmed flush).
func New(js AsyncPublisher, cfg Config, start uint64, log *slog.Logger, m Metrics) *Publisher {
	cfg.MaxInflight = max(cfg.MaxInflight, 1)
	cfg.MaxInflightBytes = max(cfg.MaxInflightBytes, 1)
	p := &Publisher{js: js, cfg: cfg, log: log, metrics: m, batcher: batch.New(cfg.Batch),
		backoffMin: 50 * time.Millisecond, backoffMax: 5 * time.Second}
	p.confirmed.Store(start)
	return p
}

// Confirmed returns the newest commit LSN whose transaction, and every earlier
// one handed over, has a PubAck for each of its changes.
func (p *Publisher) Confirmed() uint64 { return p.confirmed.Load() }

// Run publishes every chunk read from in until in is closed and everything
// handed over has a PubAck (then it returns nil), or ctx ends (then it
// returns ctx's error and whatever was not acknowledged stays unconfirmed).
func (p *Publisher) Run(ctx context.Context, in <-chan batch.Chunk) error {
	var (
		ready   []batch.Message // closed, not yet sent
		closed  bool
		linger  = time.NewTimer(time.Hour)
		lingerT time.Time // what linger is set to; zero: stopped or fired
	)
	linger.Stop()
	defer linger.Stop()
	for {
		p.pop()
		for len(ready) > 0 && p.room(ready[0]) {
			p.send(ready[0])
			ready[0] = batch.Message{}
			ready = ready[1:]
		}
		if closed && len(ready) == 0 && p.inflight() == 0 {
			return nil
		}

		// More input only once what closed is sent: bounded memory.
		var inCh <-chan batch.Chunk
		if !closed && len(ready) == 0 {
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
		var lingerCh <-chan time.Time
		if at, ok := p.batcher.Deadline(); ok {
			if !at.Equal(lingerT) {
				linger.Reset(time.Until(at))
				lingerT = at
			}
			lingerCh = linger.C
		}
		select {
		case c, ok := <-inCh:
			if !ok {
				closed = true
				p.batcher.Flush()
			} else {
				p.take(&c)
			}
			ready = append(ready, p.batcher.Take()...)
		case <-okCh:
			p.acked(&p.fifo[p.head])
		case err := <-errCh:
			p.fifo[p.head].err = err
		case now := <-lingerCh:
			lingerT = time.Time{}
			p.batcher.Expire(now)
			ready = append(ready, p.batcher.Take()...)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// take hands a chunk's changes to the batcher.
func (p *Publisher) take(c *batch.Chunk) {
	if c.Session != p.session {
		// The old session's open transactions get no more changes (the
		// slot sends them again in the new one).
		for _, t := range p.txns[p.txnHead:] {
			t.End()
		}
		p.batcher.Session(c.Session)
		p.session = c.Session
	}
	if n := len(p.txns); n == p.txnHead || p.txns[n-1] != c.Txn {
		p.txns = append(p.txns, c.Txn)
	}
	// Before the changes go in, so that batches closing now carry the
	// commit; the transaction cannot be confirmed before its changes are
	// counted (nothing is popped while a chunk is taken).
	if c.End {
		if c.Commit != 0 {
			c.Txn.Commit(c.Commit, c.CommitTime)
		} else {
			c.Txn.End()
		}
	}
	now := time.Now()
	for i := range c.Changes {
		p.batcher.Add(&c.Changes[i], now)
	}
	p.batcher.Expire(now)
}

func (p *Publisher) room(m batch.Message) bool {
	n := p.inflight()
	return n == 0 || (n < p.cfg.MaxInflight && p.bytes+len(m.Msg.Data) <= p.cfg.MaxInflightBytes)
}

func (p *Publisher) send(m batch.Message) {
	e := entry{m: m}
	// m carries its Nats-Msg-Id header already (what WithMsgID would set):
	// passing WithMsgID too makes nats.go assign the header again.
	// Re-sends below use WithMsgID.
	e.fut, e.err = p.js.PublishMsgAsync(m.Msg)
	p.fifo = append(p.fifo, e)
	p.bytes += len(m.Msg.Data)
}

// acked records e's PubAck: its changes count no more against their
// transactions.
func (p *Publisher) acked(e *entry) {
	e.acked, e.err = true, nil
	p.bytes -= len(e.m.Msg.Data)
	for _, tc := range e.m.Txns {
		tc.Txn.Pending -= tc.N
	}
	if p.metrics.Published != nil {
		p.metrics.Published(e.m.Msg.Subject, e.m.Changes)
	}
	p.batcher.Release(e.m)
}

func (p *Publisher) inflight() int { return len(p.fifo) - p.head }

// pop removes acknowledged entries from the front and advances Confirmed
// over the transactions that are done.
func (p *Publisher) pop() {
	for p.head < len(p.fifo) && p.fifo[p.head].acked {
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
	for p.txnHead < len(p.txns) && p.txns[p.txnHead].Done() {
		if c := p.txns[p.txnHead].CommitLSN(); c > p.confirmed.Load() {
			p.confirmed.Store(c)
			if p.metrics.Confirmed != nil {
				p.metrics.Confirmed(c)
			}
		}
		p.txns[p.txnHead] = nil
		p.txnHead++
	}
	if p.txnHead == len(p.txns) {
		p.txns, p.txnHead = p.txns[:0], 0
	} else if p.txnHead > 4096 && p.txnHead*2 > len(p.txns) {
		n := copy(p.txns, p.txns[p.txnHead:])
		clear(p.txns[n:])
		p.txns, p.txnHead = p.txns[:n], 0
	}
	if p.metrics.Inflight != nil {
		p.metrics.Inflight(p.inflight())
	}
}

// recover runs when the oldest message in flight failed: see the package doc.
func (p *Publisher) recover(ctx context.Context) error {
	first := p.fifo[p.head].m.Msg
	p.log.Warn("publish failed, re-sending in order", "subject", first.Subject,
		"msg_id", first.Header.Get(jetstream.MsgIDHeader), "inflight", p.inflight(), "err", p.fifo[p.head].err)
	// Let every publish in flight settle.
	for i := p.head; i < len(p.fifo); i++ {
		e := &p.fifo[i]
		if e.acked || e.err != nil {
			continue
		}
		select {
		case <-e.fut.Ok():
			p.acked(e)
		case err := <-e.fut.Err():
			e.err = err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Re-send what has no PubAck, one at a time, in order.
	for i := p.head; i < len(p.fifo); i++ {
		e := &p.fifo[i]
		if e.acked {
			continue
		}
		if p.metrics.Retry != nil {
			p.metrics.Retry()
		}
		if err := p.publishSync(ctx, e.m.Msg, e.m.Msg.Header.Get(jetstream.MsgIDHeader)); err != nil {
			return err
		}
		p.acked(e)
	}
	p.pop()
	return nil
}

// publishSync publishes one message and waits for its PubAck, retrying with
// backoff until it gets one or ctx ends.
func (p *Publisher) publishSync(ctx context.Context, msg *nats.Msg, id string) error {
	b := service.Backoff{Min: p.backoffMin, Max: p.backoffMax}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if p.metrics.Retry != nil {
				p.metrics.Retry()
			}
			if err := b.Wait(ctx); err != nil {
				return err
			}
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
		if p.cfg.Unanswered != nil && unanswered(err) {
			p.cfg.Unanswered(err)
		}
	}
}
