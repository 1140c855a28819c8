// Package consume runs one owned table: it reads the table's durable pull
// consumer, closes windows by age, bytes or records, hands each window to the
// applier, and acks the window's messages only after the applier returned
// success. A window that cannot be applied parks the table: its messages
// stay un-acked in the stream and the table waits for redms-loader resume.
package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/services/loader/internal/apply"
	"github.com/redms/redms/services/loader/internal/metrics"
	"github.com/redms/redms/services/loader/internal/park"
	"github.com/redms/redms/services/loader/internal/window"
)

// Applier applies one window of a table to the warehouse in one transaction.
// A *apply.ParkError is permanent; any other error is worth a retry.
type Applier interface {
	Apply(ctx context.Context, w apply.Window) (apply.Result, error)
}

var _ Applier = (*apply.Applier)(nil)

// Parks is the parked-table store a runner reads and writes.
type Parks interface {
	Park(ctx context.Context, consumer string, r park.Record) error
	Get(ctx context.Context, consumer string) (park.Record, bool, error)
	WaitResumed(ctx context.Context, consumer string) error
}

var _ Parks = (*park.Store)(nil)

// Config is how a runner reads and applies.
type Config struct {
	Stream     string
	Replica    string
	AckWait    time.Duration
	Limits     window.Limits
	Retries    int           // transient apply failures retried before parking
	Backoff    time.Duration // first retry delay, doubled each retry
	MaxBackoff time.Duration
	Idle       time.Duration // refresh metrics this often while nothing arrives
	PullBatch  int           // messages the client buffers ahead
	AckMode    AckMode
}

// AckMode is how a committed window leaves the stream.
type AckMode string

const (
	// AckPurge removes the window with one purge of the table's subject up
	// to the window's last sequence: every earlier message of the subject
	// is in this window or an applied one, because the consumer delivers in
	// stream order and one runner applies the table. A million individual
	// acks keep the server busy for 7–17 s on a 2-core machine; the purge
	// takes about one.
	AckPurge AckMode = "purge"
	// AckEach acks every message (the last with a double ack). It needs no
	// purge permission and keeps one reply subject per message in memory.
	AckEach AckMode = "ack"
)

// Deps is what a runner talks to.
type Deps struct {
	JS      jetstream.JetStream
	Applier Applier
	Parks   Parks
	Metrics *metrics.Loader
	Log     *slog.Logger
}

// Table names one table of the stream.
type Table struct {
	Ref      subject.Table
	Subject  string
	Consumer string // durable consumer name
	Key      string // the table's key in the lease and parked KV buckets
	Label    string // schema.table unquoted, the metrics label
}

// Runner applies the windows of one table, one after another.
type Runner struct {
	cfg  Config
	deps Deps
	t    Table
	log  *slog.Logger

	lastApplied uint64 // last stream sequence this runner saw committed

	mu         sync.Mutex // guards the lag inputs below, read by the reporter
	lastCommit time.Time  // source commit time of the last applied change
	openCommit time.Time  // source commit time of the open window's first change
	windowOpen bool
}

// NewRunner returns a runner for t.
func NewRunner(t Table, cfg Config, deps Deps) *Runner {
	return &Runner{cfg: cfg, deps: deps, t: t, log: deps.Log.With("table", t.Label, "subject", t.Subject)}
}

type outcome int

const (
	outcomeStopped outcome = iota
	outcomeParked
	outcomeLost // the consumer is gone from the server; create it again
)

// errConsumerLost ends a pump whose consumer no longer exists on the server.
var errConsumerLost = errors.New("consumer lost")

// Run applies the table until soft ends (an apply in progress finishes and
// is acked; a window still filling is abandoned un-acked) or hard ends
// (everything is abandoned un-acked). soft must be derived from hard. It
// returns nil when stopped, an error when the table could not be read.
func (r *Runner) Run(hard, soft context.Context) error {
	recreate := false
	for {
		if soft.Err() != nil {
			return nil
		}
		rec, parked, err := r.deps.Parks.Get(soft, r.t.Key)
		if err != nil {
			return err
		}
		if parked {
			r.deps.Metrics.Parked.WithLabelValues(r.t.Label).Set(1)
			r.log.Warn("table is parked; waiting for redms-loader resume", "lsn", rec.FirstLSN+".."+rec.LastLSN, "reason", rec.Reason)
			if err := r.deps.Parks.WaitResumed(soft, r.t.Key); err != nil {
				if soft.Err() != nil {
					return nil
				}
				return err
			}
			r.log.Info("table resumed")
			recreate = true
		}
		r.deps.Metrics.Parked.WithLabelValues(r.t.Label).Set(0)
		cons, err := r.consumer(soft, recreate)
		if err != nil {
			if soft.Err() != nil {
				return nil
			}
			return err
		}
		out, err := r.pump(hard, soft, cons)
		if err != nil {
			return err
		}
		switch out {
		case outcomeStopped:
			return nil
		case outcomeLost:
			// Un-acked messages outlive the consumer in the work-queue
			// stream; a new one delivers them again from the first.
			r.log.Warn("consumer is gone from the server (a JetStream restart drops memory-stored consumers); creating it again", "consumer", r.t.Consumer)
			recreate = false
		default:
			recreate = true
		}
	}
}

// ConsumerConfig is the durable consumer of table t.
func ConsumerConfig(t Table, cfg Config) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       t.Consumer,
		Description:   "redms-loader " + t.Label,
		FilterSubject: t.Subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxAckPending: max(2*cfg.Limits.Records, 2*cfg.PullBatch),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    -1,
		// In a work-queue stream an acked message is gone, so the consumer's
		// own state is redundant: a server restart loses the consumer, the
		// runner notices (pump) and creates it again, and delivery starts
		// at the first message left, which is the first un-acked one.
		// Keeping it in memory spares the server re-encoding a million
		// pending acks to disk while a large window is open (~18% of its
		// CPU in the 1M-change benchmark).
		MemoryStorage: true,
	}
}

// consumer creates the table's consumer, deleting it first when force is
// set or when messages are pending from a previous owner: in a work-queue
// stream un-acked messages outlive the consumer, and a new one delivers them
// again at once and in order instead of after the ack wait.
func (r *Runner) consumer(ctx context.Context, force bool) (jetstream.Consumer, error) {
	c, err := r.deps.JS.Consumer(ctx, r.cfg.Stream, r.t.Consumer)
	exists := err == nil
	switch {
	case exists:
		pending := c.CachedInfo().NumAckPending
		if force || pending > 0 {
			r.log.Info("recreating consumer to redeliver un-acked messages now", "ack_pending", pending)
			if err := r.deleteConsumer(ctx); err != nil {
				return nil, err
			}
			exists = false
		}
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, fmt.Errorf("read consumer %s: %w", r.t.Consumer, err)
	}
	cfg := ConsumerConfig(r.t, r.cfg)
	c, err = r.deps.JS.CreateOrUpdateConsumer(ctx, r.cfg.Stream, cfg)
	if err != nil && exists {
		// Some settings (the state's storage) cannot change in place; the
		// un-acked messages survive the consumer, so replace it.
		r.log.Info("recreating consumer whose settings cannot be updated", "err", err)
		if err := r.deleteConsumer(ctx); err != nil {
			return nil, err
		}
		c, err = r.deps.JS.CreateOrUpdateConsumer(ctx, r.cfg.Stream, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", r.t.Consumer, err)
	}
	return c, nil
}

func (r *Runner) deleteConsumer(ctx context.Context) error {
	err := r.deps.JS.DeleteConsumer(ctx, r.cfg.Stream, r.t.Consumer)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("delete consumer %s: %w", r.t.Consumer, err)
	}
	return nil
}

// pump reads windows and applies them until stopped, parked, or the
// consumer is lost: the reporter finds it missing, or the read says so. A
// window still filling is then abandoned un-acked and read again from the
// new consumer; an apply in progress finishes and is acked first.
func (r *Runner) pump(hard, soft context.Context, cons jetstream.Consumer) (outcome, error) {
	it, err := cons.Messages(jetstream.PullMaxMessages(max(1, min(r.cfg.PullBatch, r.cfg.Limits.Records))))
	if err != nil {
		return 0, fmt.Errorf("read consumer %s: %w", r.t.Consumer, err)
	}
	defer it.Stop()

	w := window.New(r.cfg.Limits)
	var msgs []apply.Msg
	var replies []string     // ack subjects of msgs
	var last jetstream.Msg   // the window's last message, double-acked
	highest := r.lastApplied // a sequence at or below this is a redelivery
	var wctx context.Context
	var opened time.Time
	cancelWindow := func() {}
	defer func() { cancelWindow() }()
	// live ends the reads when the consumer is found missing.
	live, lose := context.WithCancelCause(soft)
	defer lose(nil)
	// The gauges keep moving while the loop waits for messages or applies.
	rctx, stopReports := context.WithCancel(soft)
	reporting := make(chan struct{})
	go func() {
		defer close(reporting)
		r.reportEvery(rctx, cons, func() { lose(errConsumerLost) })
	}()
	defer func() {
		stopReports()
		<-reporting
	}()

	for {
		if soft.Err() != nil {
			return outcomeStopped, nil
		}
		closeNow := false
		var msg jetstream.Msg
		if w.Empty() {
			idle, cancel := context.WithTimeout(live, r.cfg.Idle)
			msg, err = it.Next(jetstream.NextContext(idle))
			cancel()
			if err != nil && errors.Is(err, context.DeadlineExceeded) && soft.Err() == nil {
				continue
			}
		} else {
			msg, err = it.Next(jetstream.NextContext(wctx))
			if err != nil && errors.Is(err, context.DeadlineExceeded) && soft.Err() == nil {
				closeNow, err = true, nil
			}
		}
		if err != nil {
			if soft.Err() != nil {
				return outcomeStopped, nil
			}
			if lost(live, err) {
				return outcomeLost, nil
			}
			return 0, fmt.Errorf("read consumer %s: %w", r.t.Consumer, err)
		}
		if msg != nil {
			md, err := msg.Metadata()
			if err != nil {
				return 0, fmt.Errorf("read consumer %s: %w", r.t.Consumer, err)
			}
			seq := md.Sequence.Stream
			if seq <= highest {
				// A redelivery of a message this runner holds or applied.
				if seq <= r.lastApplied {
					_ = msg.Ack()
				}
				continue
			}
			highest = seq
			h := msg.Headers()
			var prev *apply.Msg
			if len(msgs) > 0 {
				prev = &msgs[len(msgs)-1]
			}
			am := windowMsg(seq, h, msg.Data(), prev)
			msgs = append(grow(msgs, r.cfg.Limits.Records), am)
			if r.cfg.AckMode == AckEach {
				replies = append(replies, msg.Reply())
			}
			last = msg
			if w.Empty() {
				opened = time.Now()
				r.mu.Lock()
				r.openCommit, r.windowOpen = am.Meta.CommitTime, true
				r.mu.Unlock()
				cancelWindow()
				wctx, cancelWindow = closeAt(live, time.Now().Add(r.cfg.Limits.Duration))
			}
			w.Add(len(msg.Data())+headerSize(h), time.Now())
			closeNow = w.Full()
		}
		if !closeNow {
			continue
		}
		cancelWindow()
		r.log.Debug("window closed", "changes", len(msgs), "bytes", w.Bytes(), "fill_seconds", time.Since(opened).Seconds())
		out, done, err := r.applyWindow(hard, soft, msgs, replies, last)
		if err != nil || !done {
			return out, err
		}
		w.Reset()
		msgs, replies, last = nil, nil, nil
		r.mu.Lock()
		r.windowOpen = false
		r.mu.Unlock()
		if r.report(soft, cons) {
			return outcomeLost, nil
		}
	}
}

// lost tells whether a read failed because the consumer is gone.
func lost(live context.Context, err error) bool {
	return errors.Is(context.Cause(live), errConsumerLost) ||
		errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted)
}

// applyWindow applies and acks one window. done is false when the runner
// must return out: the table was parked or the runner was stopped.
func (r *Runner) applyWindow(hard, soft context.Context, msgs []apply.Msg, replies []string, last jetstream.Msg) (out outcome, done bool, err error) {
	win := apply.Window{Table: r.t.Ref, Msgs: msgs}
	backoff := r.cfg.Backoff
	for attempt := 0; ; attempt++ {
		start := time.Now()
		res, err := r.deps.Applier.Apply(hard, win)
		if err == nil {
			r.applied(msgs, res, time.Since(start))
			r.ack(hard, replies, last, msgs[len(msgs)-1].Seq)
			return 0, true, nil
		}
		if hard.Err() != nil {
			return outcomeStopped, false, nil
		}
		r.deps.Metrics.ApplyErrors.WithLabelValues(r.t.Label).Inc()
		if pe, ok := errors.AsType[*apply.ParkError](err); ok {
			return outcomeParked, false, r.park(soft, msgs, parkReason(pe), pe.FirstLSN, pe.LastLSN, pe.FirstSeq, pe.LastSeq)
		}
		if attempt >= r.cfg.Retries {
			return outcomeParked, false, r.park(soft, msgs, fmt.Sprintf("apply failed %d times: %v", attempt+1, err), "", "", 0, 0)
		}
		r.log.Warn("apply window failed; retrying", "attempt", attempt+1, "retries", r.cfg.Retries, "backoff", backoff.String(),
			"lsn", windowLSNs(msgs), "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-soft.Done():
			t.Stop()
			return outcomeStopped, false, nil
		case <-t.C:
		}
		backoff = min(2*backoff, r.cfg.MaxBackoff)
	}
}

// closeAt is the context a filling window waits on: it ends at the window's
// deadline, when the runner stops or when the consumer is lost.
func closeAt(live context.Context, d time.Time) (context.Context, context.CancelFunc) {
	return context.WithDeadline(live, d)
}

// parkReason is the applier's reason with its cause.
func parkReason(pe *apply.ParkError) string {
	if pe.Err == nil {
		return pe.Reason
	}
	return pe.Reason + ": " + pe.Err.Error()
}

// applied records a committed window and acks its messages.
func (r *Runner) applied(msgs []apply.Msg, res apply.Result, took time.Duration) {
	m, label := r.deps.Metrics, r.t.Label
	if res.Applied {
		m.WindowsApplied.WithLabelValues(label).Inc()
		m.Changes.WithLabelValues(label).Add(float64(len(msgs)))
		m.ApplyDuration.WithLabelValues(label).Observe(took.Seconds())
		m.StagedBytes.WithLabelValues(label).Add(float64(res.StagedBytes))
		m.Replays.WithLabelValues(label).Add(float64(res.Replays))
		for action, n := range res.Rows {
			m.Rows.WithLabelValues(label, action).Add(float64(n))
		}
		for rule, n := range res.Adjusted {
			m.Adjusted.WithLabelValues(label, rule).Add(float64(n))
		}
		for reason, n := range res.Skipped {
			m.Skipped.WithLabelValues(label, reason).Add(float64(n))
			r.log.Warn("changes skipped: the table has no key columns; give it a primary key or REPLICA IDENTITY FULL, or set its keys in REDMS_TABLE_KEYS",
				"reason", reason, "changes", n, "lsn", windowLSNs(msgs))
		}
		if !res.LastCommit.IsZero() {
			r.mu.Lock()
			r.lastCommit = res.LastCommit
			r.mu.Unlock()
			m.ApplyLag.Observe(time.Since(res.LastCommit).Seconds())
		}
		r.log.Info("window applied", "changes", len(msgs), "lsn", windowLSNs(msgs),
			"seconds", took.Seconds(), "replays", res.Replays)
	} else {
		r.log.Info("window applied before; acking", "changes", len(msgs), "lsn", windowLSNs(msgs))
	}
	r.lastApplied = msgs[len(msgs)-1].Seq
}

// ack removes a committed window from the stream. In AckEach mode every
// message is acked by its reply subject and the last one double-acked, so
// that the server has them all when it returns (acks of one connection are
// processed in order). A failure is only logged: the window is committed,
// and a redelivery is skipped by the watermark and acked then.
func (r *Runner) ack(ctx context.Context, replies []string, last jetstream.Msg, lastSeq uint64) {
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if r.cfg.AckMode != AckEach {
		err := r.purge(actx, lastSeq)
		if err == nil {
			r.log.Debug("window removed from the stream", "last_seq", lastSeq, "ack_seconds", time.Since(start).Seconds())
			return
		}
		r.log.Error("remove applied window from the stream; its messages come again and are skipped (set REDMS_ACK_MODE=ack if the loader may not purge)",
			"last_seq", lastSeq, "err", err)
	}
	nc := r.deps.JS.Conn()
	for _, reply := range replies[:max(len(replies)-1, 0)] {
		if err := nc.Publish(reply, ackPayload); err != nil {
			r.log.Warn("ack window", "err", err)
			break
		}
	}
	if err := last.DoubleAck(actx); err != nil {
		r.log.Warn("ack window", "err", err)
	}
	r.log.Debug("window acked", "changes", len(replies), "ack_seconds", time.Since(start).Seconds())
}

// purge removes the table's messages up to lastSeq from the stream.
func (r *Runner) purge(ctx context.Context, lastSeq uint64) error {
	s, err := r.deps.JS.Stream(ctx, r.cfg.Stream)
	if err != nil {
		return fmt.Errorf("purge %s: %w", r.t.Subject, err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(r.t.Subject), jetstream.WithPurgeSequence(lastSeq+1)); err != nil {
		return fmt.Errorf("purge %s up to %d: %w", r.t.Subject, lastSeq, err)
	}
	return nil
}

// ackPayload is JetStream's positive ack.
var ackPayload = []byte("+ACK")

// park records the table as parked and logs one error line.
func (r *Runner) park(ctx context.Context, msgs []apply.Msg, reason, firstLSN, lastLSN string, firstSeq, lastSeq uint64) error {
	if firstLSN == "" {
		firstLSN = msgs[0].Meta.LSN
	}
	if lastLSN == "" {
		lastLSN = msgs[len(msgs)-1].Meta.LSN
	}
	if firstSeq == 0 {
		firstSeq = msgs[0].Seq
	}
	if lastSeq == 0 {
		lastSeq = msgs[len(msgs)-1].Seq
	}
	rec := park.Record{Table: r.t.Label, FirstLSN: firstLSN, LastLSN: lastLSN,
		FirstSeq: firstSeq, LastSeq: lastSeq, Reason: reason, Replica: r.cfg.Replica, ParkedAt: time.Now().UTC()}
	// Park even when we are stopping: the window failed for good.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := r.deps.Parks.Park(pctx, r.t.Key, rec); err != nil {
		return err
	}
	r.deps.Metrics.Parked.WithLabelValues(r.t.Label).Set(1)
	r.log.Error("table parked; its messages stay in the stream un-acked until redms-loader resume "+r.t.Label,
		"lsn", firstLSN+".."+lastLSN, "reason", reason, "first_seq", firstSeq, "last_seq", lastSeq, "consumer", r.t.Consumer)
	return nil
}

// reportEvery refreshes the backlog and lag gauges every Idle until ctx
// ends, and calls lose when the consumer is missing from the server.
func (r *Runner) reportEvery(ctx context.Context, cons jetstream.Consumer, lose func()) {
	t := time.NewTicker(r.cfg.Idle)
	defer t.Stop()
	for {
		if r.report(ctx, cons) {
			lose()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// report refreshes the backlog and lag gauges. missing is true when the
// consumer is gone from the server; the backlog is then the table's
// messages left in the stream.
func (r *Runner) report(ctx context.Context, cons jetstream.Consumer) (missing bool) {
	var backlog uint64
	info, err := cons.Info(ctx)
	switch {
	case err == nil:
		backlog = info.NumPending + uint64(info.NumAckPending)
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		missing = true
		n, err := r.subjectMsgs(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("count the table's messages in the stream", "err", err)
			}
			return missing
		}
		backlog = n
	default:
		if ctx.Err() == nil {
			r.log.Warn("read consumer info", "err", err)
		}
		return false
	}
	r.deps.Metrics.Backlog.WithLabelValues(r.t.Label).Set(float64(backlog))
	r.mu.Lock()
	since, open := r.lastCommit, r.windowOpen
	if since.IsZero() && open {
		// Before this runner's first commit: since the open window's first change.
		since = r.openCommit
	}
	r.mu.Unlock()
	lag := 0.0 // caught up and idle
	if (backlog > 0 || open) && !since.IsZero() {
		lag = max(time.Since(since).Seconds(), 0)
	}
	r.deps.Metrics.Lag.WithLabelValues(r.t.Label).Set(lag)
	return missing
}

// subjectMsgs counts the table's messages in the stream.
func (r *Runner) subjectMsgs(ctx context.Context) (uint64, error) {
	s, err := r.deps.JS.Stream(ctx, r.cfg.Stream)
	if err != nil {
		return 0, fmt.Errorf("read stream %s: %w", r.cfg.Stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(r.t.Subject))
	if err != nil {
		return 0, fmt.Errorf("read stream %s: %w", r.cfg.Stream, err)
	}
	return info.State.Subjects[r.t.Subject], nil
}

func windowLSNs(msgs []apply.Msg) string {
	if len(msgs) == 0 {
		return ""
	}
	return msgs[0].Meta.LSN + ".." + msgs[len(msgs)-1].Meta.LSN
}

// headerSize approximates a message's header bytes on the wire.
func headerSize(h map[string][]string) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}
