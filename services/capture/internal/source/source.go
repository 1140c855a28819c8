// Package source reads the logical replication slot. One goroutine (Run) owns
// the replication connection: it decodes records into transactions, hands them
// to the publisher, and confirms to Postgres only the position the publisher
// reports as acknowledged.
package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/services/capture/internal/change"
	"github.com/redms/redms/services/capture/internal/publish"
)

// Plugin is the output plugin capture reads.
const Plugin = "test_decoding"

// PluginArgs are the test_decoding options capture starts replication with.
var PluginArgs = []string{`"include-xids" '1'`, `"include-timestamp" '1'`, `"skip-empty-xacts" '1'`}

// ErrWrongPlugin is returned when the slot exists with another output plugin.
var ErrWrongPlugin = errors.New("slot uses another output plugin")

// ErrWrongSlot is returned when the slot exists for another database.
var ErrWrongSlot = errors.New("slot is not usable")

var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// ValidSlotName reports whether name is a name Postgres accepts for a slot.
func ValidSlotName(name string) bool { return slotName.MatchString(name) }

// SlotSQL reads the slot's plugin and confirmed flush position.
func SlotSQL(slot string) string {
	return "SELECT plugin, confirmed_flush_lsn, database, database = current_database() FROM pg_replication_slots WHERE slot_name = '" + slot + "'"
}

// ReplicationURL adds replication=database to a connection string (URL or
// keyword/value form).
func ReplicationURL(conn string) (string, error) {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err != nil {
			return "", fmt.Errorf("parse source url: %w", err)
		}
		q := u.Query()
		q.Set("replication", "database")
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return strings.TrimSpace(conn) + " replication=database", nil
}

// ParsePGDuration parses a duration as SHOW prints it: "60s", "1min",
// "500ms", "0".
func ParsePGDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse duration %q: %w", s, err)
	}
	units := map[string]time.Duration{"": time.Millisecond, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}
	u, ok := units[s[i:]]
	if !ok {
		return 0, fmt.Errorf("parse duration %q: unknown unit", s)
	}
	return time.Duration(n) * u, nil
}

// Config says which slot to read and how.
type Config struct {
	URL  string // normal connection string of the source database
	Slot string
	// ConfirmEvery is how often a newly acknowledged position is confirmed.
	ConfirmEvery time.Duration
	// DryRun never confirms anything beyond the slot's position at start.
	DryRun bool
}

// Metrics receives the source's state; any field may be nil.
type Metrics struct {
	Confirmed func(lsn uint64)
	Ready     func(bool)
	Unparsed  func()
}

// Source reads the slot.
type Source struct {
	cfg       Config
	log       *slog.Logger
	builder   *change.Builder
	acked     func() uint64
	metrics   Metrics
	slotStart uint64 // slot's confirmed flush when the session started
	idle      uint64 // keepalive position with nothing pending
	handed    uint64 // newest commit handed to the publisher
	sent      uint64 // flush position last sent
	lastSent  time.Time
}

// New returns a source whose builder emits into the publisher; acked reports
// the publisher's confirmed position.
func New(cfg Config, log *slog.Logger, b *change.Builder, acked func() uint64, m Metrics) *Source {
	if cfg.ConfirmEvery <= 0 {
		cfg.ConfirmEvery = 500 * time.Millisecond
	}
	return &Source{cfg: cfg, log: log, builder: b, acked: acked, metrics: m}
}

// Run reads the slot until ctx ends, reconnecting with backoff. It closes out
// when it stops; then it waits for drained (closed by the publisher when it
// has finished) and sends a last status update if it still has a connection.
func (s *Source) Run(ctx context.Context, out chan<- publish.Batch, drained <-chan struct{}) error {
	closed := false
	closeOut := func() {
		if !closed {
			close(out)
			closed = true
		}
	}
	defer closeOut()
	wait := 200 * time.Millisecond
	for {
		started := time.Now()
		err := s.session(ctx, out, func(conn *pgconn.PgConn) {
			closeOut()
			<-drained
			if err := s.sendStatus(context.Background(), conn, false); err != nil {
				s.log.Warn("send final status update", "err", err)
			} else {
				s.log.Info("confirmed at shutdown", "lsn", pglogrepl.LSN(s.sent).String())
			}
		})
		if s.metrics.Ready != nil {
			s.metrics.Ready(false)
		}
		if ctx.Err() != nil {
			closeOut()
			<-drained
			return nil
		}
		if errors.Is(err, ErrWrongPlugin) || errors.Is(err, ErrWrongSlot) {
			return err
		}
		if time.Since(started) > time.Minute {
			wait = 200 * time.Millisecond
		}
		s.log.Warn("replication session ended, reconnecting", "err", err, "backoff", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		wait = min(wait*2, 10*time.Second)
	}
}

func (s *Source) flushPos() uint64 {
	if s.cfg.DryRun {
		return s.slotStart
	}
	return max(s.acked(), s.slotStart, s.idle)
}

// sendStatus confirms the acknowledged position. Write, flush and apply are
// all set: pglogrepl would copy a zero flush from write.
func (s *Source) sendStatus(ctx context.Context, conn *pgconn.PgConn, reply bool) error {
	flush := pglogrepl.LSN(s.flushPos())
	write := max(pglogrepl.LSN(s.handed), flush)
	if flush == 0 {
		write = 0
	}
	err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: write,
		WALFlushPosition: flush,
		WALApplyPosition: flush,
		ClientTime:       time.Now(),
		ReplyRequested:   reply,
	})
	if err != nil {
		return fmt.Errorf("send standby status update: %w", err)
	}
	if uint64(flush) != s.sent {
		s.log.Debug("confirmed", "lsn", flush.String())
	}
	s.sent, s.lastSent = uint64(flush), time.Now()
	if s.metrics.Confirmed != nil {
		s.metrics.Confirmed(uint64(flush))
	}
	return nil
}

func (s *Source) session(ctx context.Context, out chan<- publish.Batch, finish func(*pgconn.PgConn)) error {
	replURL, err := ReplicationURL(s.cfg.URL)
	if err != nil {
		return err
	}
	conn, err := pgconn.Connect(ctx, replURL)
	if err != nil {
		return fmt.Errorf("connect for replication: %w", err)
	}
	defer conn.Close(context.Background())

	if err := s.ensureSlot(ctx, conn); err != nil {
		return err
	}
	interval, err := statusInterval(ctx, conn)
	if err != nil {
		return err
	}
	s.builder.Reset()
	s.idle = 0
	if err := pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication, PluginArgs: PluginArgs,
	}); err != nil {
		return fmt.Errorf("start replication on slot %s: %w", s.cfg.Slot, err)
	}
	s.log.Info("replication started", "slot", s.cfg.Slot, "lsn", pglogrepl.LSN(s.slotStart).String(), "status_interval", interval)
	if s.metrics.Ready != nil {
		s.metrics.Ready(true)
	}

	// While the publisher is busy (stream full, NATS down) this goroutine
	// waits here, still confirming what gets acknowledged and still telling
	// the server it is alive.
	tick := time.NewTicker(s.cfg.ConfirmEvery)
	defer tick.Stop()
	s.builder.Emit = func(ctx context.Context, b publish.Batch) error {
		select {
		case out <- b:
			s.handed = max(s.handed, b.Commit)
			return nil
		default:
		}
		for {
			select {
			case out <- b:
				s.handed = max(s.handed, b.Commit)
				return nil
			case now := <-tick.C:
				if s.flushPos() != s.sent || now.Sub(s.lastSent) >= interval {
					if err := s.sendStatus(ctx, conn, false); err != nil {
						return err
					}
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}

	var (
		rec  testdecoding.Record
		recv receiveContext
	)
	defer recv.stop()
	nextStatus := time.Now().Add(interval)
	for {
		if ctx.Err() != nil {
			finish(conn)
			return nil
		}
		now := time.Now()
		if now.After(nextStatus) || (s.flushPos() != s.sent && now.Sub(s.lastSent) >= s.cfg.ConfirmEvery) {
			if err := s.sendStatus(ctx, conn, false); err != nil {
				return err
			}
			nextStatus = now.Add(interval)
		}
		// One receive context serves every receive until its deadline
		// (a deadline context per message cost ~10 % of the CPU); a
		// timeout just brings the loop back here to confirm.
		deadline := now.Add(s.cfg.ConfirmEvery)
		if nextStatus.Before(deadline) {
			deadline = nextStatus
		}
		msg, err := conn.ReceiveMessage(recv.until(ctx, now, deadline))
		if err != nil {
			if ctx.Err() != nil || pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receive replication message: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parse keepalive: %w", err)
				}
				// Nothing open and everything handed over acknowledged: the
				// server has sent all it decoded up to its WAL end, so that
				// position is safe to confirm (WAL of other databases or
				// excluded tables is not retained forever).
				if !s.builder.InTxn() && s.acked() >= s.handed && len(out) == 0 {
					s.idle = max(s.idle, uint64(pkm.ServerWALEnd))
				}
				if pkm.ReplyRequested {
					if err := s.sendStatus(ctx, conn, false); err != nil {
						return err
					}
					nextStatus = time.Now().Add(interval)
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parse xlogdata: %w", err)
				}
				err = testdecoding.ParseInto(xld.WALData, &rec)
				if err != nil {
					// A change whose table is known still goes out, on that
					// table's subject: the loader parks the table (DESIGN
					// §2.5) and everything else keeps flowing. Without a
					// table there is nowhere safe to put it: stop.
					var pe *testdecoding.ParseError
					t, ok := change.TableOfParseError(err)
					if !ok || !errors.As(err, &pe) {
						return fmt.Errorf("decode record at %s: %w", xld.WALStart, err)
					}
					s.log.Error("unparseable change published for the loader to park", "table", t.String(), "lsn", xld.WALStart.String(), "reason", pe.Reason)
					if s.metrics.Unparsed != nil {
						s.metrics.Unparsed()
					}
					rec = testdecoding.Record{Kind: testdecoding.KindDelete, Table: t}
				}
				if err := s.builder.Record(ctx, &rec, xld.WALData, xld.WALStart); err != nil {
					if ctx.Err() != nil {
						continue
					}
					return err
				}
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyDone:
			return errors.New("replication stream ended by server")
		default:
			return fmt.Errorf("unexpected replication message %T", msg)
		}
	}
}

// receiveContext hands out one deadline context for many receives.
type receiveContext struct {
	ctx      context.Context
	cancel   context.CancelFunc
	deadline time.Time
}

// until returns the current context while its deadline lies ahead of now,
// else a new one ending at deadline.
func (r *receiveContext) until(parent context.Context, now, deadline time.Time) context.Context {
	if r.ctx != nil && now.Before(r.deadline) {
		return r.ctx
	}
	r.stop()
	r.deadline = deadline
	r.ctx, r.cancel = context.WithDeadline(parent, deadline)
	return r.ctx
}

func (r *receiveContext) stop() {
	if r.cancel != nil {
		r.cancel()
		r.ctx, r.cancel = nil, nil
	}
}

// ensureSlot creates the slot when missing, checks its plugin, and records
// its confirmed flush position.
func (s *Source) ensureSlot(ctx context.Context, conn *pgconn.PgConn) error {
	for attempt := 0; attempt < 2; attempt++ {
		res, err := conn.Exec(ctx, SlotSQL(s.cfg.Slot)).ReadAll()
		if err != nil {
			return fmt.Errorf("read slot %s: %w", s.cfg.Slot, err)
		}
		if len(res) == 1 && len(res[0].Rows) == 1 {
			row := res[0].Rows[0]
			if plugin := string(row[0]); plugin != Plugin {
				return fmt.Errorf("slot %s: %w: %q, want %q (drop it or choose another REDMS_SLOT)", s.cfg.Slot, ErrWrongPlugin, plugin, Plugin)
			}
			if string(row[3]) != "t" {
				return fmt.Errorf("slot %s: %w: it belongs to database %q (choose another REDMS_SLOT)", s.cfg.Slot, ErrWrongSlot, string(row[2]))
			}
			lsn, err := pglogrepl.ParseLSN(string(row[1]))
			if err != nil {
				return fmt.Errorf("slot %s confirmed_flush_lsn: %w", s.cfg.Slot, err)
			}
			s.slotStart = uint64(lsn)
			return nil
		}
		_, err = pglogrepl.CreateReplicationSlot(ctx, conn, s.cfg.Slot, Plugin, pglogrepl.CreateReplicationSlotOptions{
			Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT",
		})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" { // created concurrently
			continue
		}
		if err != nil {
			return fmt.Errorf("create slot %s: %w", s.cfg.Slot, err)
		}
		s.log.Info("created replication slot", "slot", s.cfg.Slot, "plugin", Plugin)
	}
	return fmt.Errorf("slot %s: not found after creating it", s.cfg.Slot)
}

// statusInterval is ¾ of wal_sender_timeout (10s when it is disabled).
func statusInterval(ctx context.Context, conn *pgconn.PgConn) (time.Duration, error) {
	res, err := conn.Exec(ctx, "SHOW wal_sender_timeout").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("show wal_sender_timeout: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 {
		return 0, errors.New("show wal_sender_timeout: no row")
	}
	d, err := ParsePGDuration(string(res[0].Rows[0][0]))
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 10 * time.Second, nil
	}
	return d * 3 / 4, nil
}
