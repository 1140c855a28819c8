// Package assign decides which tables this replica applies. Every lease
// TTL/3 it heartbeats, renews the leases it holds, discovers the stream's
// table subjects, takes free tables it ranks top for (or that stayed free
// longer than a TTL, so nothing starves), and hands back tables whose
// top-ranked replica is another live one. Each owned table runs in its own
// goroutine (consume.Runner), so windows of one table never overlap.
package assign

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/natsconn"
	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/services/loader/internal/consume"
	"github.com/redms/redms/services/loader/internal/lease"
	"github.com/redms/redms/services/loader/internal/metrics"
	"github.com/redms/redms/services/loader/internal/park"
)

// SubjectFilter matches every table subject of the WAL stream.
const SubjectFilter = subject.Wildcard

// Config is how the coordinator runs.
type Config struct {
	Stream          string
	ShutdownTimeout time.Duration
	Runner          consume.Config
	// Turned, when not nil, is called on every turn of Run's loop (at
	// least every LEASE_TTL/3, whether or not NATS answers): the
	// coordinator's heartbeat.
	Turned func()
	// Unanswered, when not nil, is called when the heartbeat got no
	// answer from JetStream (natsconn.Unanswered): the server this
	// replica is on may be cut off from the cluster, and the caller may
	// move to another before the lease of every table it holds runs out.
	Unanswered func(err error)
}

// Coordinator owns this replica's set of tables.
type Coordinator struct {
	cfg     Config
	js      jetstream.JetStream
	leases  *lease.Store
	parks   *park.Store
	deps    consume.Deps
	metrics *metrics.Loader
	log     *slog.Logger

	owned     map[string]*held     // by lease key
	freeSince map[string]time.Time // lease key → when this replica first saw it free
	tables    map[string]consume.Table
	exits     chan string
	ready     atomic.Bool
}

type held struct {
	table      consume.Table
	rev        atomic.Uint64 // read by the table's runner (leaseCheck)
	renewed    time.Time
	cancelHard context.CancelFunc
	cancelSoft context.CancelFunc
	releasing  bool
	lost       bool
	exited     chan struct{}
	err        error
}

// New returns a coordinator; Run starts it.
func New(cfg Config, js jetstream.JetStream, leases *lease.Store, parks *park.Store, deps consume.Deps) *Coordinator {
	return &Coordinator{
		cfg: cfg, js: js, leases: leases, parks: parks, deps: deps, metrics: deps.Metrics,
		log:       deps.Log,
		owned:     map[string]*held{},
		freeSince: map[string]time.Time{},
		tables:    map[string]consume.Table{},
		exits:     make(chan string, 64),
	}
}

// Ready reports whether the coordinator has completed one round with NATS.
func (c *Coordinator) Ready() bool { return c.ready.Load() }

// Run assigns tables until ctx ends, then stops taking windows, lets an
// apply in progress finish (abandoning it un-acked at the shutdown timeout),
// and releases every lease.
func (c *Coordinator) Run(ctx context.Context) error {
	tick := time.NewTicker(c.leases.TTL() / 3)
	defer tick.Stop()
	c.round(ctx)
	for {
		if c.cfg.Turned != nil {
			c.cfg.Turned()
		}
		select {
		case <-ctx.Done():
			return c.shutdown(tick)
		case <-tick.C:
			c.round(ctx)
		case key := <-c.exits:
			c.reap(ctx, key)
		}
	}
}

// round is one heartbeat, renewal, discovery and rebalance.
func (c *Coordinator) round(ctx context.Context) {
	me := c.leases.Replica()
	// A heartbeat that takes longer than the turn is no heartbeat; an
	// unanswered one says soon that this server may be cut off.
	hctx, cancel := context.WithTimeout(ctx, c.leases.TTL()/3)
	err := c.leases.Heartbeat(hctx)
	cancel()
	if err != nil {
		c.log.Warn("heartbeat", "err", err)
		if c.cfg.Unanswered != nil && ctx.Err() == nil && natsconn.Unanswered(err) {
			c.cfg.Unanswered(err)
		}
	}
	c.renew(ctx)
	view, err := c.leases.Look(ctx)
	if err != nil {
		c.log.Warn("read leases", "err", err)
		return
	}
	if !slices.Contains(view.Live, me) {
		return // our heartbeat is not visible: do not rebalance on a partial view
	}
	for key, h := range c.owned {
		if h.releasing || h.lost {
			continue
		}
		if top := lease.Top(key, view.Live); top != me {
			h.releasing = true
			h.cancelSoft()
			c.log.Info("handing table to its top-ranked replica after the current window", "table", h.table.Label, "to", top)
		}
	}
	subjects, err := c.discover(ctx)
	if err != nil {
		c.log.Warn("discover tables", "err", err)
		return
	}
	now := time.Now()
	for _, t := range subjects {
		key := t.Key
		if _, ok := c.owned[key]; ok {
			continue
		}
		if view.Held[key] {
			delete(c.freeSince, key)
			continue
		}
		since, seen := c.freeSince[key]
		if !seen {
			c.freeSince[key] = now
		}
		starving := seen && now.Sub(since) > c.leases.TTL()
		if lease.Top(key, view.Live) != me && !starving {
			continue
		}
		rev, ok, err := c.leases.Acquire(ctx, key)
		if err != nil {
			c.log.Warn("acquire lease", "table", t.Label, "err", err)
			continue
		}
		if !ok {
			continue
		}
		delete(c.freeSince, key)
		c.start(ctx, key, t, rev)
	}
	c.metrics.OwnedTables.Set(float64(len(c.owned)))
	if n, err := c.parks.Count(ctx); err == nil {
		c.metrics.ParkedTables.Set(float64(n))
	}
	c.ready.Store(true)
}

// renew extends every lease held; a lease someone else took stops its
// table at once, abandoning the window un-acked.
func (c *Coordinator) renew(ctx context.Context) {
	for key, h := range c.owned {
		if h.lost {
			continue
		}
		rev, err := c.leases.Renew(ctx, key, h.rev.Load())
		if err == nil {
			h.rev.Store(rev)
			h.renewed = time.Now()
			continue
		}
		if errors.Is(err, lease.ErrLost) || time.Since(h.renewed) > c.leases.TTL() {
			h.lost = true
			h.cancelHard()
			c.metrics.LeasesLost.Inc()
			c.log.Error("lease lost; abandoning the table's window un-acked", "table", h.table.Label, "err", err)
			continue
		}
		c.log.Warn("renew lease", "table", h.table.Label, "err", err)
	}
}

// discover lists the tables of the stream (see Subjects).
func (c *Coordinator) discover(ctx context.Context) ([]consume.Table, error) {
	subjects, err := Subjects(ctx, c.js, c.cfg.Stream)
	if err != nil {
		return nil, err
	}
	out := make([]consume.Table, 0, len(subjects))
	for _, subj := range subjects {
		t, ok := c.tables[subj]
		if !ok {
			t, err = TableOf(subj)
			if err != nil {
				c.log.Warn("ignoring subject that names no table", "subject", subj, "err", err)
				continue
			}
			c.tables[subj] = t
		}
		out = append(out, t)
	}
	return out, nil
}

// Subjects lists, sorted, the table subjects that have messages in the
// stream or a loader consumer already (a table whose messages are all
// applied has no subject left in a work-queue stream, but it keeps its
// consumer, its owner, and may be parked).
func Subjects(ctx context.Context, js jetstream.JetStream, stream string) ([]string, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(SubjectFilter))
	if err != nil {
		return nil, fmt.Errorf("read stream %s subjects: %w", stream, err)
	}
	set := map[string]bool{}
	for subj := range info.State.Subjects {
		set[subj] = true
	}
	consumers := s.ListConsumers(ctx)
	for ci := range consumers.Info() {
		if strings.HasPrefix(ci.Config.FilterSubject, subject.Prefix+".") && strings.HasPrefix(ci.Name, "redms-") {
			set[ci.Config.FilterSubject] = true
		}
	}
	if err := consumers.Err(); err != nil {
		return nil, fmt.Errorf("list consumers of %s: %w", stream, err)
	}
	out := make([]string, 0, len(set))
	for subj := range set {
		out = append(out, subj)
	}
	slices.Sort(out)
	return out, nil
}

// TableOf names the table of a WAL subject.
func TableOf(subj string) (consume.Table, error) {
	t, err := subject.Parse(subj)
	if err != nil {
		return consume.Table{}, fmt.Errorf("parse subject %s: %w", subj, err)
	}
	return consume.Table{Ref: t, Subject: subj, Consumer: subject.ConsumerName(t), Key: subject.KVKey(t), Label: t.String()}, nil
}

// start runs the table's windows in a goroutine of its own.
func (c *Coordinator) start(ctx context.Context, key string, t consume.Table, rev uint64) {
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	soft, cancelSoft := context.WithCancel(hard)
	h := &held{table: t, renewed: time.Now(), cancelHard: cancelHard, cancelSoft: cancelSoft, exited: make(chan struct{})}
	h.rev.Store(rev)
	c.owned[key] = h
	c.log.Info("table acquired", "table", t.Label, "consumer", t.Consumer)
	deps := c.deps
	deps.Lease = leaseCheck{leases: c.leases, key: key, rev: &h.rev}
	r := consume.NewRunner(t, c.cfg.Runner, deps)
	go func() {
		h.err = r.Run(hard, soft)
		close(h.exited)
		c.exits <- key // Run and shutdown always receive
	}()
}

// leaseCheck is a runner's check of its table's lease: held while the
// bucket's entry is this replica's at the revision the coordinator last
// renewed to, or a later one (a renewal in flight).
type leaseCheck struct {
	leases *lease.Store
	key    string
	rev    *atomic.Uint64
}

var _ consume.Lease = leaseCheck{}

func (l leaseCheck) Held(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return l.leases.Holds(ctx, l.key, l.rev.Load())
}

// reap releases the lease of a table whose runner returned.
func (c *Coordinator) reap(ctx context.Context, key string) {
	h, ok := c.owned[key]
	if !ok {
		return
	}
	<-h.exited
	delete(c.owned, key)
	h.cancelHard()
	c.metrics.Forget(h.table.Label)
	if h.err != nil {
		c.log.Error("table stopped; it will be taken again", "table", h.table.Label, "err", h.err)
	}
	if !h.lost {
		if err := c.leases.Release(ctx, key, h.rev.Load()); err != nil {
			c.log.Warn("release lease", "table", h.table.Label, "err", err)
		}
	}
	c.log.Info("table released", "table", h.table.Label)
	c.metrics.OwnedTables.Set(float64(len(c.owned)))
}

// shutdown stops every table and releases the leases within the shutdown
// timeout, renewing them while applies in progress finish.
func (c *Coordinator) shutdown(tick *time.Ticker) error {
	c.log.Info("stopping: no new windows; applies in progress finish or are abandoned un-acked", "timeout", c.cfg.ShutdownTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ShutdownTimeout)
	defer cancel()
	for _, h := range c.owned {
		h.cancelSoft()
	}
	// Leave a quarter of the timeout to abandon and release.
	abandon := time.NewTimer(c.cfg.ShutdownTimeout * 3 / 4)
	defer abandon.Stop()
	for len(c.owned) > 0 {
		select {
		case key := <-c.exits:
			c.reap(ctx, key)
		case <-tick.C:
			c.renew(ctx)
		case <-abandon.C:
			for _, h := range c.owned {
				h.cancelHard()
			}
		case <-ctx.Done():
			return fmt.Errorf("stop tables: %d still running at the shutdown timeout", len(c.owned))
		}
	}
	if err := c.leases.Leave(ctx); err != nil {
		c.log.Warn("leave", "err", err)
	}
	c.metrics.OwnedTables.Set(0)
	return nil
}
