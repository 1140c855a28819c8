// Package source reads the logical replication slot. One goroutine (Run) owns
// the replication connection: it reads records, has the assembler turn them
// into chunks of changes, hands those to the publisher, and confirms to
// Postgres only the position the publisher reports as acknowledged. Each
// connection is a new session: the assembler starts numbering positions at
// the slot's confirmed position, and its chunks tell the batcher to start
// the prev chains again.
package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/services/capture/internal/batch"
	"github.com/redms/redms/services/capture/internal/change"
	"github.com/redms/redms/services/capture/internal/slotrecord"
)

// Plugin is the output plugin capture reads.
const Plugin = "test_decoding"

// PluginArgs are the test_decoding options capture starts replication with.
var PluginArgs = []string{`"include-xids" '1'`, `"include-timestamp" '1'`, `"skip-empty-xacts" '1'`}

// ErrWrongPlugin is returned when the slot exists with another output plugin.
var ErrWrongPlugin = errors.New("slot uses another output plugin")

// ErrWrongSlot is returned when the slot exists for another database.
var ErrWrongSlot = errors.New("slot is not usable")

// ErrSlotLost is returned when the slot is missing although capture read
// it before, and REDMS_SLOT_CREATE does not say to create it anyway.
var ErrSlotLost = errors.New("slot was lost")

// ErrSlotMissing is returned when the slot is missing and
// REDMS_SLOT_CREATE=never.
var ErrSlotMissing = errors.New("slot is missing")

// ErrSlotActive ends a session that could not start because another
// session (another capture: Postgres allows one reader per slot) reads the
// slot. Run keeps trying, as a standby, every Config.StandbyRetry.
var ErrSlotActive = errors.New("slot is active in another session")

// ErrSilent ends a session on which the server sent nothing for
// wal_sender_timeout although it sends a keepalive every half of it: the
// connection is dead or cut off, and the server ends its side after the
// same time (docs/DESIGN.md §9), so the slot passes to a standby.
var ErrSilent = errors.New("replication connection silent")

// Values of Config.SlotCreate (REDMS_SLOT_CREATE).
const (
	SlotCreateAuto   = "auto"   // create the slot only when nothing says capture read it before
	SlotCreateAlways = "always" // create a missing slot, loudly when capture read it before
	SlotCreateNever  = "never"  // never create the slot
)

// Assembler turns one session's records into chunks of changes (change.Assembler).
type Assembler interface {
	Start(base uint64)
	InTxn() bool
	Record(ctx context.Context, rec *testdecoding.Record, raw []byte, lsn pglogrepl.LSN) (batch.Chunk, bool, error)
}

var _ Assembler = (*change.Assembler)(nil)

// Evidence is the durable record that capture read the slot before
// (slotrecord.Keeper).
type Evidence interface {
	Last(ctx context.Context) (slotrecord.Record, bool, error)
	Started(ctx context.Context, lsn uint64) error
}

var _ Evidence = (*slotrecord.Keeper)(nil)

var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// ValidSlotName reports whether name is a name Postgres accepts for a slot.
func ValidSlotName(name string) bool { return slotName.MatchString(name) }

// SlotSQL reads the slot's plugin, confirmed flush position, database and
// the pid of the session reading it (empty when none).
func SlotSQL(slot string) string {
	return "SELECT plugin, confirmed_flush_lsn, database, database = current_database(), active_pid FROM pg_replication_slots WHERE slot_name = '" + slot + "'"
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
	// SlotCreate is SlotCreateAuto (also when empty), SlotCreateAlways or
	// SlotCreateNever: what to do when the slot is missing.
	SlotCreate string
	// BeforeCreate, when set, runs before capture creates the slot for a
	// source it never read (first start): it requests the initial snapshot.
	BeforeCreate func(ctx context.Context) error
	// StandbyRetry is how often a standby (the slot is active in another
	// session) tries to take the slot (default 1s).
	StandbyRetry time.Duration
}

// Metrics receives the source's state; any field may be nil.
type Metrics struct {
	Confirmed func(lsn uint64)
	Ready     func(bool)
	Unparsed  func()
	// Standby is true while the slot is active in another session.
	Standby func(bool)
}

// Source reads the slot.
type Source struct {
	cfg       Config
	log       *slog.Logger
	asm       Assembler
	evidence  Evidence // nil: nothing recorded or known (--dry-run)
	acked     func() uint64
	metrics   Metrics
	slotStart uint64 // slot's confirmed flush when the session started
	idle      uint64 // keepalive position with nothing pending
	handed    uint64 // newest commit handed to the publisher
	sent      uint64 // flush position last sent
	lastSent  time.Time
}

// New returns a source whose records asm assembles; acked reports the
// publisher's confirmed position; evidence (nil for none) records that the
// slot is read and says whether it was read before.
func New(cfg Config, log *slog.Logger, asm Assembler, evidence Evidence, acked func() uint64, m Metrics) *Source {
	if cfg.ConfirmEvery <= 0 {
		cfg.ConfirmEvery = 500 * time.Millisecond
	}
	if cfg.SlotCreate == "" {
		cfg.SlotCreate = SlotCreateAuto
	}
	if cfg.StandbyRetry <= 0 {
		cfg.StandbyRetry = time.Second
	}
	return &Source{cfg: cfg, log: log, asm: asm, evidence: evidence, acked: acked, metrics: m}
}

// Run reads the slot until ctx ends, reconnecting with backoff. It closes out
// when it stops; then it waits for drained (closed by the publisher when it
// has finished) and sends a last status update if it still has a connection.
func (s *Source) Run(ctx context.Context, out chan<- batch.Chunk, drained <-chan struct{}) error {
	closed := false
	closeOut := func() {
		if !closed {
			close(out)
			closed = true
		}
	}
	defer closeOut()
	b := service.Backoff{Min: 200 * time.Millisecond, Max: 10 * time.Second}
	var standbySince time.Time // zero: not standing by
	for {
		started := time.Now()
		err := s.session(ctx, out, func() {
			if !standbySince.IsZero() {
				s.log.Info("took over the slot: this capture is active", "slot", s.cfg.Slot, "standby_for", time.Since(standbySince).Round(time.Millisecond))
				standbySince = time.Time{}
			}
			if s.metrics.Standby != nil {
				s.metrics.Standby(false)
			}
		}, func(conn *pgconn.PgConn) {
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
		if errors.Is(err, ErrWrongPlugin) || errors.Is(err, ErrWrongSlot) || errors.Is(err, ErrSlotLost) || errors.Is(err, ErrSlotMissing) {
			return err
		}
		if time.Since(started) > time.Minute {
			b.Reset()
		}
		var next time.Duration
		if errors.Is(err, ErrSlotActive) {
			// A standby tries at a steady pace, not backing off: the
			// takeover time is the active one's end plus at most this.
			if standbySince.IsZero() {
				standbySince = time.Now()
				s.log.Info("standing by: the slot is active in another session, taking it over when that ends", "slot", s.cfg.Slot, "err", err, "retry", s.cfg.StandbyRetry)
				if s.metrics.Standby != nil {
					s.metrics.Standby(true)
				}
			}
			next = s.cfg.StandbyRetry
			b.Reset()
		} else {
			next = b.Next()
			s.log.Warn("replication session ended, reconnecting", "err", err, "backoff", next)
		}
		_ = service.Sleep(ctx, next) // a stop ends the wait; the loop returns above
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

// session runs one replication session: started is called once it
// streams, finish at a stop (ctx ended) with the connection still open.
func (s *Source) session(ctx context.Context, out chan<- batch.Chunk, started func(), finish func(*pgconn.PgConn)) error {
	replURL, err := ReplicationURL(s.cfg.URL)
	if err != nil {
		return err
	}
	pcfg, err := pgconn.ParseConfig(replURL)
	if err != nil {
		return fmt.Errorf("parse source url: %w", err)
	}
	dial := pcfg.DialFunc
	pcfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &coalescingConn{Conn: c}, nil
	}
	conn, err := pgconn.ConnectConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("connect for replication: %w", err)
	}
	defer conn.Close(context.Background())

	if err := s.ensureSlot(ctx, conn); err != nil {
		return err
	}
	timeout, err := senderTimeout(ctx, conn)
	if err != nil {
		return err
	}
	interval := 10 * time.Second // wal_sender_timeout disabled: nothing is silent
	if timeout > 0 {
		interval = timeout * 3 / 4
	}
	s.asm.Start(s.slotStart)
	s.idle = 0
	if err := pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication, PluginArgs: PluginArgs,
	}); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" { // object_in_use: taken since ensureSlot looked
			return fmt.Errorf("start replication on slot %s: %w: %w", s.cfg.Slot, ErrSlotActive, err)
		}
		return fmt.Errorf("start replication on slot %s: %w", s.cfg.Slot, err)
	}
	s.log.Info("replication started", "slot", s.cfg.Slot, "lsn", pglogrepl.LSN(s.slotStart).String(), "status_interval", interval, "wal_sender_timeout", timeout)
	started()
	if s.metrics.Ready != nil {
		s.metrics.Ready(true)
	}
	tick := time.NewTicker(s.cfg.ConfirmEvery)
	defer tick.Stop()
	h := handOff{s: s, conn: conn, out: out, tick: tick.C, interval: interval}

	// Receives wait on the connection's read deadline, not on a context:
	// pgconn watches a receive's context (two goroutine hand-offs per
	// message, ~11 % of capture's CPU in the profile). A timeout just
	// brings the loop back here to confirm; a stop ends the wait at once.
	var (
		rec       testdecoding.Record
		raw       = conn.Conn()
		readUntil time.Time
		heard     = time.Now() // when the server last sent anything
	)
	defer context.AfterFunc(ctx, func() { _ = raw.SetReadDeadline(time.Now()) })()
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
		if !now.Before(readUntil) {
			readUntil = now.Add(s.cfg.ConfirmEvery)
			if nextStatus.Before(readUntil) {
				readUntil = nextStatus
			}
			if err := raw.SetReadDeadline(readUntil); err != nil {
				return fmt.Errorf("set replication read deadline: %w", err)
			}
		}
		msg, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			if pgconn.Timeout(err) {
				// The server sends at least a keepalive every half of
				// wal_sender_timeout; after all of it, it has given up on
				// this session too.
				if silent := time.Since(heard); timeout > 0 && silent > timeout {
					return fmt.Errorf("slot %s: %w: nothing received for %s (wal_sender_timeout %s)", s.cfg.Slot, ErrSilent, silent.Round(time.Millisecond), timeout)
				}
				continue
			}
			return fmt.Errorf("receive replication message: %w", err)
		}
		heard = time.Now()
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
				if !s.asm.InTxn() && s.acked() >= s.handed && len(out) == 0 {
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
					// table's subject: the loader parks the table
					// (docs/DESIGN.md §2.5) and everything else keeps flowing. Without a
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
				b, ok, err := s.asm.Record(ctx, &rec, xld.WALData, xld.WALStart)
				if err == nil && ok {
					var waited bool
					waited, err = h.hand(ctx, b)
					if waited { // waiting for the publisher is no silence of the server
						heard = time.Now()
					}
				}
				if err != nil {
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

// handOff hands chunks to the publisher. While the publisher is busy
// (stream full, NATS down) it waits, still confirming what gets
// acknowledged and still telling the server it is alive.
type handOff struct {
	s        *Source
	conn     *pgconn.PgConn
	out      chan<- batch.Chunk
	tick     <-chan time.Time
	interval time.Duration
}

func (h *handOff) hand(ctx context.Context, b batch.Chunk) (waited bool, err error) {
	s := h.s
	select {
	case h.out <- b:
		s.handed = max(s.handed, b.Commit)
		return false, nil
	default:
	}
	for {
		select {
		case h.out <- b:
			s.handed = max(s.handed, b.Commit)
			return true, nil
		case now := <-h.tick:
			if s.flushPos() != s.sent || now.Sub(s.lastSent) >= h.interval {
				if err := s.sendStatus(ctx, h.conn, false); err != nil {
					return true, err
				}
			}
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
}

// ensureSlot checks the slot's plugin and database, records its confirmed
// flush position, and notes in the evidence that a session starts on it.
// A missing slot is created unless the evidence says capture read it
// before (everything between is gone: see createSlot) or SlotCreate says
// never.
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
			if pid := row[4]; pid != nil {
				return fmt.Errorf("slot %s: %w (pid %s)", s.cfg.Slot, ErrSlotActive, pid)
			}
			lsn, err := pglogrepl.ParseLSN(string(row[1]))
			if err != nil {
				return fmt.Errorf("slot %s confirmed_flush_lsn: %w", s.cfg.Slot, err)
			}
			s.slotStart = uint64(lsn)
			if s.evidence != nil {
				if err := s.evidence.Started(ctx, s.slotStart); err != nil {
					if attempt > 0 { // just created: without the record a later loss would go unnoticed
						return fmt.Errorf("slot %s: record that capture reads it: %w", s.cfg.Slot, err)
					}
					s.log.Warn("record that capture reads the slot", "slot", s.cfg.Slot, "err", err)
				}
			}
			return nil
		}
		if err := s.createSlot(ctx, conn); err != nil {
			return err
		}
	}
	return fmt.Errorf("slot %s: not found after creating it", s.cfg.Slot)
}

// createSlot creates the missing slot as SlotCreate allows.
func (s *Source) createSlot(ctx context.Context, conn *pgconn.PgConn) error {
	if s.cfg.SlotCreate == SlotCreateNever {
		return fmt.Errorf("slot %s is missing and REDMS_SLOT_CREATE=never: %w (create it with pg_create_logical_replication_slot('%s', '%s'), or set REDMS_SLOT_CREATE=auto)",
			s.cfg.Slot, ErrSlotMissing, s.cfg.Slot, Plugin)
	}
	var (
		last  slotrecord.Record
		found bool
	)
	switch {
	case s.evidence != nil:
		var err error
		if last, found, err = s.evidence.Last(ctx); err != nil {
			return fmt.Errorf("slot %s is missing; cannot tell whether capture read it before: %w", s.cfg.Slot, err)
		}
	case s.cfg.SlotCreate != SlotCreateAlways:
		// A slot created here would hide a lost one from the next real run.
		return fmt.Errorf("slot %s is missing, and without NATS (--dry-run) nothing tells whether capture read it before: %w (create it, or set REDMS_SLOT_CREATE=always)",
			s.cfg.Slot, ErrSlotMissing)
	}
	if found && s.cfg.SlotCreate != SlotCreateAlways {
		return fmt.Errorf("slot %s is missing, but capture read it before (last confirmed %s at %s, started %s; KV %s): %w: "+
			"changes committed after that position may be missing from the stream and the warehouse, and a snapshot of the tables repairs them; "+
			"set REDMS_SLOT_CREATE=always to create the slot and capture from now on",
			s.cfg.Slot, last.ConfirmedLSN, last.ConfirmedAt.Format(time.RFC3339), last.StartedAt.Format(time.RFC3339), slotrecord.Bucket, ErrSlotLost)
	}
	if !found && s.cfg.BeforeCreate != nil {
		if err := s.cfg.BeforeCreate(ctx); err != nil {
			return fmt.Errorf("slot %s: before creating it: %w", s.cfg.Slot, err)
		}
	}
	_, err := pglogrepl.CreateReplicationSlot(ctx, conn, s.cfg.Slot, Plugin, pglogrepl.CreateReplicationSlotOptions{
		Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT",
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" { // created concurrently
		return nil
	}
	if err != nil {
		return fmt.Errorf("create slot %s: %w", s.cfg.Slot, err)
	}
	if found {
		s.log.Error("created replication slot that capture read before (REDMS_SLOT_CREATE=always): changes committed after its last confirmed position may be missing from the stream and the warehouse; a snapshot of the tables repairs them",
			"slot", s.cfg.Slot, "last_confirmed_lsn", last.ConfirmedLSN, "confirmed_at", last.ConfirmedAt, "started_at", last.StartedAt)
		return nil
	}
	s.log.Info("created replication slot", "slot", s.cfg.Slot, "plugin", Plugin)
	return nil
}

// senderTimeout is the server's wal_sender_timeout (0: disabled).
func senderTimeout(ctx context.Context, conn *pgconn.PgConn) (time.Duration, error) {
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
	return max(d, 0), nil
}
