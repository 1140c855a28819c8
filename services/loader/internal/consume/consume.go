// Package consume runs one owned table: it reads the table's durable pull
// consumer, closes windows by age, bytes or records, hands each window to
// the applier, and removes from the stream only what the applier committed
// (or found applied before). A window that cannot be applied parks the
// table: its messages stay un-acked in the stream and the table waits for
// redms-loader resume.
//
// Two runners on one consumer (docs/DESIGN.md §4): a paused owner whose
// lease expired may still pull from the consumer the new owner uses. So a
// runner confirms it holds the lease right before every apply and every
// removal and before it creates the consumer again; it tracks the
// consumer's delivery sequence, which the server increments for every
// delivery, redeliveries included, and a jump means another process
// received from the consumer: the runner then abandons its open window and
// the changes it holds (un-acked) and, after its lease check, recreates the
// consumer, which delivers every un-acked message again. It purges up to a
// sequence only what no other process can have received: no jump was seen
// on the consumer and no message at or below it is held; otherwise it acks
// exactly the messages of its committed window (REDMS_ACK_MODE=ack) or
// leaves them for a later purge. A redelivered message is acked at once
// only when its position is at or below the applied position.
package consume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/apply"
	"github.com/redms/redms/services/loader/internal/metrics"
	"github.com/redms/redms/services/loader/internal/park"
	"github.com/redms/redms/services/loader/internal/warehouse"
	"github.com/redms/redms/services/loader/internal/window"
)

// Applier applies one window of a table to the warehouse in one transaction.
// A *apply.ParkError is permanent; any other error is retried for as long
// as it lasts.
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

// Lease tells whether this runner still holds its table's lease.
type Lease interface {
	Held(ctx context.Context) (bool, error)
}

// Config is how a runner reads and applies.
type Config struct {
	Stream     string
	Replica    string
	AckWait    time.Duration
	Limits     window.Limits
	Backoff    time.Duration // first retry delay of a failed apply, doubled each retry
	MaxBackoff time.Duration
	// StallAlarm: a window retried, or changes held, this long is logged at
	// error level (once per StallAlarm).
	StallAlarm time.Duration
	Idle       time.Duration // refresh metrics this often while nothing arrives
	PullBatch  int           // messages the client buffers ahead
	AckMode    AckMode
}

// AckMode is how a committed window leaves the stream.
type AckMode string

const (
	// AckPurge removes the window with one purge of the table's subject up
	// to the window's last sequence, when that removes nothing another
	// process received or this one holds (see the package doc). A million
	// individual acks keep the server busy for 7–17 s on a 2-core machine;
	// the purge takes about one.
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
	Lease   Lease // nil: always held (tests)
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

	// The target's applied position (and legacy fence) the last window
	// found or left: a message at or below is applied.
	position  walheader.Pos
	legacySeq uint64

	mu            sync.Mutex // guards the lag and stall inputs below, read by the reporter
	lastCommit    time.Time  // source commit time of the last applied change
	openCommit    time.Time  // source commit time of the open window's first change
	windowOpen    bool
	idleSince     time.Time // waiting for messages with no window open since (zero: not waiting)
	holdingSince  time.Time // changes held since
	held          int       // how many
	retryingSince time.Time // the current window failing since
	alarmed       time.Time // last stall logged at error level
}

// NewRunner returns a runner for t.
func NewRunner(t Table, cfg Config, deps Deps) *Runner {
	return &Runner{cfg: cfg, deps: deps, t: t, log: deps.Log.With("table", t.Label, "subject", t.Subject)}
}

type outcome int

const (
	outcomeStopped   outcome = iota
	outcomeParked            // wait for resume, then recreate the consumer
	outcomeLost              // the consumer is gone from the server; create it again
	outcomeShared            // another process received from the consumer; recreate it
	outcomeStalled           // the consumer has messages but delivers none; recreate it
	outcomeLeaseLost         // the lease check failed: stop
)

// errConsumerLost ends a pump whose consumer no longer exists on the server.
var errConsumerLost = errors.New("consumer lost")

// errPullStalled ends a pump whose consumer has messages for it but
// delivers none while it waits (a pull request lost in a cluster's
// failover, a consumer leader that does not serve): stallAfter Idle
// periods of that and the consumer is created again.
var errPullStalled = errors.New("pull stalled")

// stallAfter is how many Idle periods a runner waits with messages
// pending on its consumer and none delivered before it calls it stalled.
const stallAfter = 3

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
		if !r.holds(soft, "create the consumer") {
			return nil
		}
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
		case outcomeStopped, outcomeLeaseLost:
			return nil
		case outcomeLost:
			// Un-acked messages outlive the consumer in the work-queue
			// stream; a new one delivers them again from the first.
			r.log.Warn("consumer is gone from the server (a JetStream restart drops memory-stored consumers); creating it again", "consumer", r.t.Consumer)
			recreate = false
		case outcomeStalled:
			r.deps.Metrics.PullStalls.WithLabelValues(r.t.Label).Inc()
			r.log.Warn("the table's consumer holds messages but delivered none while the runner waited; creating it again",
				"consumer", r.t.Consumer, "waited", (stallAfter * r.cfg.Idle).String())
			recreate = true
		default:
			recreate = true
		}
	}
}

// setIdle notes whether the pump waits for messages with no window open.
func (r *Runner) setIdle(idle bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !idle:
		r.idleSince = time.Time{}
	case r.idleSince.IsZero():
		r.idleSince = time.Now()
	}
}

// holds confirms the lease before action: false (logged) when it is lost.
// While the lease bucket cannot be read it keeps asking: the runner never
// goes on without a positive answer, and its coordinator stops it once the
// lease could not be renewed for a TTL.
func (r *Runner) holds(ctx context.Context, action string) bool {
	if r.deps.Lease == nil {
		return true
	}
	b := service.Backoff{Min: r.cfg.Backoff, Max: 5 * time.Second}
	for {
		ok, err := r.deps.Lease.Held(ctx)
		switch {
		case ctx.Err() != nil:
			return false
		case err == nil && ok:
			return true
		case err == nil:
			r.deps.Metrics.LeasesLost.Inc()
			r.log.Error("lease not held; stopping the table before it would " + action + " (its window stays un-acked)")
			return false
		}
		delay := b.Next()
		r.log.Warn("cannot confirm the lease; asking again before it would "+action, "err", err, "backoff", delay.String())
		if service.Sleep(ctx, delay) != nil {
			return false
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
		// Unlimited: while a table holds changes back (they wait for an
		// earlier change stored later in the stream) every later message
		// is held un-acked too, and a limit would stop delivery before the
		// missing one, for good. Pulls bound what is delivered otherwise.
		MaxAckPending: -1,
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
	r.followStreamLeader(ctx, c)
	return c, nil
}

// followStreamLeader moves the consumer's leadership to the stream's
// leader when another replica leads it. A node that rejoins after a
// cut-off catches up on the stream for a while; a consumer it leads
// meanwhile knows, and delivers, only the messages that node holds (seen:
// tables stalled for a minute after the heal, their consumers led by the
// rejoined node). The stream's leader holds every message. Best effort:
// the reporter still recreates a consumer that falls behind.
func (r *Runner) followStreamLeader(ctx context.Context, c jetstream.Consumer) {
	ci := c.CachedInfo()
	if ci.Cluster == nil || ci.Cluster.Leader == "" {
		return // one server
	}
	st, err := r.deps.JS.Stream(ctx, r.cfg.Stream)
	if err != nil {
		return
	}
	si := st.CachedInfo()
	if si.Cluster == nil || si.Cluster.Leader == "" || si.Cluster.Leader == ci.Cluster.Leader {
		return
	}
	to := si.Cluster.Leader
	req := fmt.Sprintf(`{"placement":{"preferred":%q}}`, to)
	resp, err := r.deps.JS.Conn().RequestWithContext(ctx, "$JS.API.CONSUMER.LEADER.STEPDOWN."+r.cfg.Stream+"."+r.t.Consumer, []byte(req))
	if err == nil {
		var answer struct {
			Error *jetstream.APIError `json:"error"`
		}
		if err = json.Unmarshal(resp.Data, &answer); err == nil && answer.Error != nil {
			err = answer.Error
		}
	}
	if err != nil {
		r.log.Warn("move the consumer's leadership to the stream's leader", "consumer", r.t.Consumer, "from", ci.Cluster.Leader, "to", to, "err", err)
		return
	}
	r.log.Info("consumer led by a replica other than the stream's leader: moved to the stream's leader", "consumer", r.t.Consumer, "from", ci.Cluster.Leader, "to", to)
	// Pull once the new leader serves, so that no pull waits on the old.
	for range 50 {
		if info, err := c.Info(ctx); err == nil && info.Cluster != nil && info.Cluster.Leader == to {
			return
		}
		if service.Sleep(ctx, 100*time.Millisecond) != nil {
			return
		}
	}
}

func (r *Runner) deleteConsumer(ctx context.Context) error {
	err := r.deps.JS.DeleteConsumer(ctx, r.cfg.Stream, r.t.Consumer)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("delete consumer %s: %w", r.t.Consumer, err)
	}
	return nil
}

// open is the runner's window: the messages held back by earlier windows
// (carried), then the new ones, and in AckEach mode their reply subjects.
type open struct {
	msgs    []apply.Msg
	replies []string
	carried int // msgs[:carried] were held by an earlier window
}

// pump reads windows and applies them until stopped, parked, the lease is
// lost, another process receives from the consumer, or the consumer is
// lost: the reporter finds it missing, or the read says so. A window still
// filling, and the changes held, are then abandoned un-acked and read again
// from the next consumer; an apply in progress finishes and is removed
// from the stream first.
func (r *Runner) pump(hard, soft context.Context, cons jetstream.Consumer) (outcome, error) {
	delivered := cons.CachedInfo().Delivered.Consumer
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(max(1, min(r.cfg.PullBatch, r.cfg.Limits.Records)), r.pullBytes()))
	if err != nil {
		return 0, fmt.Errorf("read consumer %s: %w", r.t.Consumer, err)
	}
	defer it.Stop()

	fill := window.New(r.cfg.Limits)
	var w open
	var highest uint64 // a sequence at or below this is a redelivery of a message of w or removed
	var wctx context.Context
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
		r.reportEvery(rctx, cons, lose)
	}()
	defer func() {
		stopReports()
		<-reporting
		r.setHolding(apply.Result{}, nil)
	}()

	for {
		if soft.Err() != nil {
			return outcomeStopped, nil
		}
		closeNow := false
		var msg jetstream.Msg
		if fill.Empty() {
			r.setIdle(true)
			idle, cancel := context.WithTimeout(live, r.cfg.Idle)
			msg, err = it.Next(jetstream.NextContext(idle))
			cancel()
			if msg != nil || (err != nil && !errors.Is(err, context.DeadlineExceeded)) {
				r.setIdle(false)
			}
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
			if errors.Is(context.Cause(live), errPullStalled) {
				return outcomeStalled, nil
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
			if md.Sequence.Consumer != delivered+1 {
				r.deps.Metrics.ConsumerGaps.WithLabelValues(r.t.Label).Inc()
				r.log.Warn("another process received from the table's consumer (its delivery sequence jumped); abandoning the open window and held changes un-acked and recreating the consumer",
					"consumer", r.t.Consumer, "delivered", delivered, "next", md.Sequence.Consumer)
				return outcomeShared, nil
			}
			delivered = md.Sequence.Consumer
			seq := md.Sequence.Stream
			h := msg.Headers()
			meta, metaErr := walheader.Parse(h)
			if metaErr == nil && r.isApplied(seq, meta) {
				// A redelivery (or a copy) of changes the warehouse has.
				_ = msg.Ack()
				continue
			}
			if seq <= highest {
				continue // a redelivery of a message this runner holds or applied
			}
			highest = seq
			// A message (a batch of changes) goes into one window whole,
			// and leaves the stream once every change of it is applied.
			first := len(w.msgs)
			w.msgs = appendMsgs(grow(w.msgs, w.carried+r.cfg.Limits.Records, max(1, len(meta.Lens))), seq, meta, metaErr, msg.Data())
			if r.cfg.AckMode == AckEach {
				w.replies = append(w.replies, msg.Reply())
				for range len(w.msgs) - first - 1 {
					w.replies = append(w.replies, "") // one reply per message, at its first change
				}
			}
			size := len(msg.Data()) + headerSize(h)
			for i := first; i < len(w.msgs); i++ {
				size += w.msgs[i].Footprint()
			}
			if fill.Empty() {
				r.mu.Lock()
				r.openCommit, r.windowOpen = w.msgs[first].Meta.CommitTime, true
				r.mu.Unlock()
				fill.Add(len(w.msgs)-first, size, time.Now())
				cancelWindow()
				wctx, cancelWindow = closeAt(live, fill.Deadline())
			} else {
				fill.Add(len(w.msgs)-first, size, time.Now())
			}
			closeNow = fill.Full()
		}
		if !closeNow {
			continue
		}
		cancelWindow()
		r.log.Debug("window closed", "changes", len(w.msgs), "held_before", w.carried, "bytes", fill.Bytes())
		out, next, done, err := r.applyWindow(hard, soft, w)
		if err != nil || !done {
			return out, err
		}
		fill.Reset()
		w = next
		r.mu.Lock()
		r.windowOpen = false
		r.mu.Unlock()
		if missing, _ := r.report(soft, cons); missing {
			return outcomeLost, nil
		}
	}
}

// pullBytes bounds the bytes the client buffers ahead: with batches of up
// to a thousand changes, PullBatch messages alone would buffer gigabytes.
// A quarter of the window's bytes, at least 8 MiB, and never less than the
// server's max payload (a pull that cannot take one message never gets it).
func (r *Runner) pullBytes() int {
	n := max(r.cfg.Limits.Bytes/4, 8<<20)
	if nc := r.deps.JS.Conn(); nc != nil {
		n = max(n, nc.MaxPayload())
	}
	return int(min(n, 1<<30))
}

// closeAt is the context a filling window waits on: it ends at the window's
// deadline, when the runner stops or when the consumer is lost.
func closeAt(live context.Context, d time.Time) (context.Context, context.CancelFunc) {
	return context.WithDeadline(live, d)
}

// isApplied reports whether the message of sequence seq whose headers say
// m is at or below the applied position the runner knows, all its changes:
// a redelivery or a copy of changes the warehouse has.
func (r *Runner) isApplied(seq uint64, m walheader.Meta) bool {
	if m.Pos.IsZero() { // a message of a capture before positions
		return seq <= r.legacySeq || !r.position.IsZero()
	}
	return !r.position.IsZero() && m.PosLast.Compare(r.position) <= 0
}

// lost tells whether a read failed because the consumer is gone.
func lost(live context.Context, err error) bool {
	return errors.Is(context.Cause(live), errConsumerLost) ||
		errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted)
}

// applyWindow applies a window, retrying transient failures for as long as
// they last, and removes what it committed from the stream. next is the
// window the runner continues with: the changes held back. done is false
// when the runner must return out.
func (r *Runner) applyWindow(hard, soft context.Context, w open) (out outcome, next open, done bool, err error) {
	win := apply.Window{Table: r.t.Ref, Msgs: w.msgs}
	b := service.Backoff{Min: r.cfg.Backoff, Max: r.cfg.MaxBackoff}
	var res apply.Result
	for attempt := 0; ; attempt++ {
		if !r.holds(soft, "apply") {
			return outcomeLeaseLost, open{}, false, nil
		}
		start := time.Now()
		res, err = r.deps.Applier.Apply(hard, win)
		if err == nil {
			r.setRetrying(false)
			r.record(w.msgs, res, time.Since(start))
			break
		}
		if hard.Err() != nil {
			return outcomeStopped, open{}, false, nil
		}
		r.deps.Metrics.ApplyErrors.WithLabelValues(r.t.Label).Inc()
		if warehouse.SerializationConflict(err) {
			r.deps.Metrics.Conflicts.WithLabelValues(r.t.Label).Inc()
		}
		if pe, ok := errors.AsType[*apply.ParkError](err); ok {
			r.setRetrying(false)
			return outcomeParked, open{}, false, r.park(soft, w.msgs, parkReason(pe), pe.FirstLSN, pe.LastLSN, pe.FirstSeq, pe.LastSeq)
		}
		since := r.setRetrying(true)
		backoff := b.Next()
		args := []any{"attempt", attempt + 1, "failing_seconds", time.Since(since).Seconds(), "backoff", backoff.String(), "lsn", windowLSNs(w.msgs), "err", err}
		if r.alarm(since) {
			r.log.Error("apply window keeps failing; retrying for as long as it lasts (a transient fault never parks the table)", args...)
		} else {
			r.log.Warn("apply window failed; retrying", args...)
		}
		if service.Sleep(soft, backoff) != nil {
			r.setRetrying(false)
			return outcomeStopped, open{}, false, nil
		}
	}
	r.position, r.legacySeq = res.Position, res.LegacySeq
	next, removable := split(w, res.Held)
	r.setHolding(res, next.msgs)
	if len(removable.msgs) > 0 {
		if !r.holds(hard, "remove its committed window from the stream") {
			return outcomeLeaseLost, open{}, false, nil
		}
		r.remove(hard, removable, next)
	}
	return 0, next, true, nil
}

// split divides w into the held changes (indexes into w.msgs, ascending),
// which become the next window's carried ones, and the rest. A message is
// held whole while any of its changes is (it leaves the stream only when
// every change of it is applied): its changes applied now are replays when
// it comes again.
func split(w open, held []int) (next, rest open) {
	if len(held) == 0 {
		return open{}, w
	}
	holdSeq := make(map[uint64]bool, len(held))
	for _, i := range held {
		holdSeq[w.msgs[i].Seq] = true
	}
	for i, m := range w.msgs {
		dst := &rest
		if holdSeq[m.Seq] {
			dst = &next
		}
		dst.msgs = append(dst.msgs, m)
		if i < len(w.replies) {
			dst.replies = append(dst.replies, w.replies[i])
		}
	}
	next.carried = len(next.msgs)
	return next, rest
}

// parkReason is the applier's reason with its cause.
func parkReason(pe *apply.ParkError) string {
	if pe.Err == nil {
		return pe.Reason
	}
	return pe.Reason + ": " + pe.Err.Error()
}

// record counts and logs what a window did.
func (r *Runner) record(msgs []apply.Msg, res apply.Result, took time.Duration) {
	m, label := r.deps.Metrics, r.t.Label
	m.Replays.WithLabelValues(label).Add(float64(res.Replays))
	for reason, n := range res.Unapplied {
		m.Unapplied.WithLabelValues(label, reason).Add(float64(n))
	}
	switch {
	case res.Applied:
		m.WindowsApplied.WithLabelValues(label).Inc()
		m.Changes.WithLabelValues(label).Add(float64(res.Changes))
		m.ApplyDuration.WithLabelValues(label).Observe(took.Seconds())
		m.StagedBytes.WithLabelValues(label).Add(float64(res.StagedBytes))
		m.Copies.WithLabelValues(label).Add(float64(res.Copies))
		for action, n := range res.Rows {
			m.Rows.WithLabelValues(label, action).Add(float64(n))
		}
		for rule, n := range res.Adjusted {
			m.Adjusted.WithLabelValues(label, rule).Add(float64(n))
		}
		if !res.LastCommit.IsZero() {
			r.mu.Lock()
			r.lastCommit = res.LastCommit
			r.mu.Unlock()
			m.ApplyLag.Observe(time.Since(res.LastCommit).Seconds())
		}
		r.log.Info("window applied", "changes", res.Changes, "lsn", res.FirstLSN+".."+res.LastLSN,
			"seconds", took.Seconds(), "replays", res.Replays, "held", len(res.Held), "position", res.Position.String())
	case len(res.Held) < len(msgs):
		r.log.Info("window applied before; removing it", "changes", len(msgs)-len(res.Held), "lsn", windowLSNs(msgs), "held", len(res.Held))
	}
}

// setHolding notes whether the table holds changes after a window, logging
// when it starts to.
func (r *Runner) setHolding(res apply.Result, held []apply.Msg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held = len(held)
	switch {
	case len(held) == 0:
		r.holdingSince = time.Time{}
	case r.holdingSince.IsZero():
		r.holdingSince = time.Now()
		what := "the change before it (its prev position)"
		if res.Partial {
			what = "the rest of its split parts"
		}
		r.log.Warn("changes held back: waiting for "+what+"; capture sends it again if it was lost",
			"held", len(held), "lsn", windowLSNs(held), "position", res.HeldAt.String(), "waiting_for", res.WaitFor.String(), "applied", res.Position.String())
	}
}

// setRetrying notes whether the current window is failing and returns
// since when.
func (r *Runner) setRetrying(failing bool) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !failing:
		r.retryingSince = time.Time{}
	case r.retryingSince.IsZero():
		r.retryingSince = time.Now()
	}
	return r.retryingSince
}

// alarm reports whether a stall that began at since has lasted the stall
// alarm and none was raised for as long.
func (r *Runner) alarm(since time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if since.IsZero() || now.Sub(since) < r.cfg.StallAlarm || now.Sub(r.alarmed) < r.cfg.StallAlarm {
		return false
	}
	r.alarmed = now
	return true
}

// remove takes a committed window's removable messages out of the stream.
// AckEach: each is acked by its reply subject, the last with a double ack,
// so that the server has them all when it returns (acks of one connection
// are processed in order). AckPurge: one purge of the subject up to the
// highest of their sequences below every held message; what is above stays
// for a later purge (or is acked when redelivered). A failure is only
// logged: the window is committed, and its messages, redelivered, are
// acked then.
func (r *Runner) remove(ctx context.Context, rest, held open) {
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if r.cfg.AckMode == AckEach {
		nc := r.deps.JS.Conn()
		last := len(rest.replies) - 1
		for last >= 0 && rest.replies[last] == "" {
			last--
		}
		for i, reply := range rest.replies {
			if reply == "" {
				continue // a later change of a batch: its message is acked at its first
			}
			var err error
			if i == last {
				_, err = nc.RequestWithContext(actx, reply, ackPayload)
			} else {
				err = nc.Publish(reply, ackPayload)
			}
			if err != nil {
				r.log.Warn("ack window; its messages come again and are acked then", "err", err)
				return
			}
		}
		r.log.Debug("window acked", "changes", len(rest.replies), "ack_seconds", time.Since(start).Seconds())
		return
	}
	upTo := uint64(0)
	for _, m := range rest.msgs {
		upTo = max(upTo, m.Seq)
	}
	for _, m := range held.msgs {
		upTo = min(upTo, m.Seq-1)
	}
	if upTo == 0 || !slices.ContainsFunc(rest.msgs, func(m apply.Msg) bool { return m.Seq <= upTo }) {
		return
	}
	if err := r.purge(actx, upTo); err != nil {
		r.log.Error("remove applied window from the stream; its messages come again and are acked then (set REDMS_ACK_MODE=ack if the loader may not purge)",
			"last_seq", upTo, "err", err)
		return
	}
	r.log.Debug("window removed from the stream", "last_seq", upTo, "ack_seconds", time.Since(start).Seconds())
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
func (r *Runner) reportEvery(ctx context.Context, cons jetstream.Consumer, lose func(error)) {
	t := time.NewTicker(r.cfg.Idle)
	defer t.Stop()
	suspect := 0 // reports in a row that found the consumer holding back
	for {
		missing, stalled := r.report(ctx, cons)
		if stalled {
			suspect++
		} else {
			suspect = 0
		}
		switch {
		case missing:
			lose(errConsumerLost)
		case suspect >= 2: // not a message caught between publish and delivery
			lose(errPullStalled)
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
// messages left in the stream. stalled is true when the runner has waited
// stallAfter Idle periods, with no window open, while the consumer holds
// messages and delivers none, or has delivered messages the runner never
// received; or has held changes that long while the consumer knows fewer
// of the table's messages than the stream holds. Its reporter acts on two
// such reports in a row.
func (r *Runner) report(ctx context.Context, cons jetstream.Consumer) (missing, stalled bool) {
	var backlog uint64
	r.mu.Lock()
	idle, holding := r.idleSince, r.holdingSince
	r.mu.Unlock()
	waited := func(since time.Time) bool { return !since.IsZero() && time.Since(since) > stallAfter*r.cfg.Idle }
	// Holding changes for an earlier one, ask the stream (its leader) how
	// many of the table's messages it has, before the consumer answers: a
	// consumer whose leader is a replica still catching up on the stream
	// (after a cut-off node rejoins) counts and delivers fewer, and the
	// missing change would wait for that replica.
	inStream, counted := uint64(0), false
	if waited(holding) {
		n, err := r.subjectMsgs(ctx)
		inStream, counted = n, err == nil
	}
	info, err := cons.Info(ctx)
	switch {
	case err == nil:
		backlog = info.NumPending + uint64(info.NumAckPending)
		switch {
		case waited(idle) && info.NumPending > 0 && info.NumAckPending == 0:
			stalled = true // messages for it, none delivered
		case waited(idle) && info.NumAckPending > 0:
			stalled = true // delivered, never received (a pull lost in a failover): redelivered only after the ack wait
		case counted && inStream > backlog:
			stalled = true // the consumer is behind the stream
		}
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		missing = true
		n, err := r.subjectMsgs(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("count the table's messages in the stream", "err", err)
			}
			return missing, false
		}
		backlog = n
	default:
		if ctx.Err() == nil {
			r.log.Warn("read consumer info", "err", err)
		}
		return false, false
	}
	r.deps.Metrics.Backlog.WithLabelValues(r.t.Label).Set(float64(backlog))
	r.mu.Lock()
	since, isOpen := r.lastCommit, r.windowOpen
	if since.IsZero() && isOpen {
		// Before this runner's first commit: since the open window's first change.
		since = r.openCommit
	}
	holding, retrying, held := r.holdingSince, r.retryingSince, r.held
	r.mu.Unlock()
	lag := 0.0 // caught up and idle
	if (backlog > 0 || isOpen) && !since.IsZero() {
		lag = max(time.Since(since).Seconds(), 0)
	}
	r.deps.Metrics.Lag.WithLabelValues(r.t.Label).Set(lag)
	r.deps.Metrics.Holding.WithLabelValues(r.t.Label).Set(secondsSince(holding))
	r.deps.Metrics.Retrying.WithLabelValues(r.t.Label).Set(secondsSince(retrying))
	if r.alarm(holding) {
		r.log.Error("changes held back for long: an earlier change has not arrived; capture re-sends what it published but the stream did not store, so look at capture (held changes stay in memory)",
			"holding_seconds", secondsSince(holding), "held", held)
	}
	return missing, stalled
}

// secondsSince is the seconds from t to now, 0 for the zero time.
func secondsSince(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return max(time.Since(t).Seconds(), 0)
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
