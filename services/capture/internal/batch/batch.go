// Package batch cuts a capture session's changes into JetStream messages
// (docs/DESIGN.md §3). A message is a batch: consecutive changes of one
// subject in position order, its body their test_decoding text joined by
// '\n', its headers those of walheader.Meta with Redms-Lens, Redms-Txns and
// Redms-Lsn-Deltas.
// A subject's open batch closes on bytes, on records, after a linger time,
// when the table's headers change (keys, key source, types, missing
// values) and at a session's end; a TRUNCATE with Redms-Partition and a
// record over the max payload (in parts) travel as messages of their own.
//
// A Batcher is a plain data structure driven by one goroutine (the
// publisher's): it never reads the clock and never blocks.
package batch

import (
	"encoding/json"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/nats-io/nats.go"

	"github.com/redms/redms/pkg/walheader"
)

// Headers is what every message of a table carries; shared by the table's
// changes and never mutated.
type Headers struct {
	Keys      []string
	KeySource string
	Types     map[string]string  // nil when none
	Missing   map[string]*string // nil when none
	// sig renders the above: a subject's batch closes when it changes.
	sig string
}

// NewHeaders returns the headers of a table's messages.
func NewHeaders(keys []string, keySource string, types map[string]string, missing map[string]*string) *Headers {
	h := &Headers{Keys: keys, KeySource: keySource, Types: types, Missing: missing}
	h.sig = walheader.EncodeKeys(keys) + "\x00" + keySource + "\x00" + encodeJSON(types) + "\x00" + encodeJSON(missing)
	return h
}

func (h *Headers) same(o *Headers) bool { return h == o || h.sig == o.sig }

// Txn is one source transaction. The assembler creates it (Xid); after it
// was handed over only the goroutine driving the Batcher touches it.
type Txn struct {
	Xid uint64

	commitLSN  uint64
	commitTime time.Time
	done       bool // its last chunk was taken (committed or not)
	// Pending counts its changes (parts count each) handed over whose
	// message has no PubAck yet.
	Pending int
}

// Commit records that t committed at lsn (the end of its COMMIT record).
func (t *Txn) Commit(lsn uint64, at time.Time) { t.commitLSN, t.commitTime, t.done = lsn, at, true }

// End records that t has no more changes, committed or not.
func (t *Txn) End() { t.done = true }

// Done reports whether t committed (or ended without COMMIT) and every
// change of it has a PubAck.
func (t *Txn) Done() bool { return t.done && t.Pending == 0 }

// CommitLSN is the end LSN of t's COMMIT; 0 when it has none (yet).
func (t *Txn) CommitLSN() uint64 { return t.commitLSN }

// Change is one change record on one subject.
type Change struct {
	Subject string
	Headers *Headers
	// Leaf is the leaf partition (test_decoding's schema.table) when the
	// change travels on its root's subject; it is only a header on a
	// message of one change.
	Leaf string
	Pos  walheader.Pos
	LSN  uint64
	Data []byte // the record's text as Postgres printed it
	Txn  *Txn
	// Partition is set on a TRUNCATE of a partition: it travels alone.
	Partition *walheader.Partition
	// Snapshot is set on the records of a snapshot chunk's part: the
	// records of one part (one pointer) make one message of their own.
	Snapshot *walheader.Snapshot
}

// Chunk is what the assembler hands over: changes of one transaction in
// position order, all of one session.
type Chunk struct {
	// Session numbers the replication sessions (and --stdin runs): a new
	// one closes every open batch and starts the prev chains again.
	Session uint64
	Txn     *Txn
	Changes []Change
	// End says the transaction has no further changes; Commit is then its
	// COMMIT's end LSN (0: it ended without one) and CommitTime its time.
	End        bool
	Commit     uint64
	CommitTime time.Time
}

// TxnCount is how many of a message's changes belong to a transaction.
type TxnCount struct {
	Txn *Txn
	N   int
}

// Message is one closed batch (or part) ready to publish.
type Message struct {
	Msg *nats.Msg
	// Changes is the number of change records the message carries; a part
	// counts as one.
	Changes int
	Txns    []TxnCount
	owned   bool // Msg.Data is the batcher's buffer (Release takes it back)
}

// Config says when a batch closes.
type Config struct {
	// Bytes closes a batch whose body reached it; a change that would
	// take the body past it goes into the next batch.
	Bytes int
	// Records closes a batch holding this many changes (1: one change
	// per message).
	Records int
	// Linger closes a batch this long after its first change was added.
	Linger time.Duration
	// MaxPayload is the server's max payload: no message is larger; a
	// record that does not fit alone is split into parts. nil or 0: no
	// limit (--dry-run).
	MaxPayload func() int64
}

// partRoom is what a part's Redms-Part header and id suffix add to the
// headers of the record's message, with margin.
const partRoom = 128

// runRoom bounds what one run adds to Redms-Txns.
const runRoom = 120

// fixedRoom bounds the header names and the values of every header but
// the table's, the id's subject and Redms-Lens/Txns.
const fixedRoom = 512

// Batcher holds the open batch of each subject and the messages closed
// but not yet taken.
type Batcher struct {
	cfg      Config
	session  uint64
	subjects map[string]*subject
	opened   []*open // in the order they opened; closed ones are skipped
	out      []Message
	max      int64    // the max payload when the last batch opened
	free     [][]byte // bodies of acknowledged messages, for new batches
}

// keepFree bounds the bodies kept for reuse.
const keepFree = 64

// subject is one subject's state in the session.
type subject struct {
	name    string
	open    *open
	last    walheader.Pos // the last position published on it
	hasLast bool
	size    int // body size of its last batch: the next one's first guess
	// lens and lsns are the arrays of its batches' Lens and LSNs, reused:
	// a closed batch's are only read while its headers are rendered.
	lens []int
	lsns []uint64
}

// open is a batch being filled.
type open struct {
	s        *subject
	hdr      *Headers
	snap     *walheader.Snapshot // the snapshot part it holds, if any
	leaf     string
	at       time.Time
	closed   bool
	body     []byte
	lens     []int
	lsns     []uint64
	runs     []run
	first    walheader.Pos
	last     walheader.Pos
	firstLSN uint64
	hdrBytes int // estimate of the headers' size
}

// run is consecutive changes of one transaction: positions first,
// first+1, … (indexes count per subject, so a transaction's changes on a
// subject are one run).
type run struct {
	txn   *Txn
	first walheader.Pos
	count int
}

func (r *run) continues(c *Change) bool {
	return r.txn == c.Txn && c.Pos == walheader.Pos{Base: r.first.Base, Index: r.first.Index + uint64(r.count)}
}

// New returns a batcher that closes batches as cfg says.
func New(cfg Config) *Batcher {
	if cfg.Records < 1 {
		cfg.Records = 1
	}
	if cfg.Bytes < 1 {
		cfg.Bytes = 1
	}
	return &Batcher{cfg: cfg, subjects: map[string]*subject{}}
}

// Session starts session n: if it is another than the current one, every
// open batch closes (they belong to the old session) and the prev chains
// start again.
func (b *Batcher) Session(n uint64) {
	if n == b.session {
		return
	}
	b.Flush()
	clear(b.subjects)
	b.session = n
}

// Add puts c into its subject's open batch at now, closing batches as the
// configuration says. c.Data is copied; c.Txn.Pending counts c.
func (b *Batcher) Add(c *Change, now time.Time) {
	s := b.subjects[c.Subject]
	if s == nil {
		s = &subject{name: c.Subject}
		b.subjects[c.Subject] = s
	}
	o := s.open
	if o != nil && (!o.hdr.same(c.Headers) || o.snap != c.Snapshot) {
		b.close(o)
		o = nil
	}
	maxPayload := b.max
	if o == nil || maxPayload == 0 { // asked once per batch: nats.Conn takes a lock
		maxPayload = b.maxPayload()
		b.max = maxPayload
	}
	if c.Partition != nil || (maxPayload > 0 && int64(len(c.Data)+b.estimate(nil, c)) > maxPayload) {
		if o != nil {
			b.close(o)
		}
		b.alone(s, c, maxPayload)
		return
	}
	// A snapshot part is one message: the snapshotter sized it.
	if o != nil && c.Snapshot == nil && !b.fits(o, c, maxPayload) {
		b.close(o)
		o = nil
	}
	if o == nil {
		o = b.open(s, c, now)
	} else {
		o.body = append(o.body, '\n')
	}
	o.body = append(o.body, c.Data...)
	if len(o.lens) > 0 {
		o.hdrBytes += lsnDeltaRoom(o.lsns[len(o.lsns)-1], c.LSN)
	}
	o.lens = append(o.lens, len(c.Data))
	o.lsns = append(o.lsns, c.LSN)
	o.hdrBytes += digits(len(c.Data)) + 1
	o.last = c.Pos
	c.Txn.Pending++
	if n := len(o.runs); n > 0 && o.runs[n-1].continues(c) {
		o.runs[n-1].count++
	} else {
		if n > 0 {
			o.hdrBytes += runRoom // the first run is in the estimate
		}
		o.runs = append(o.runs, run{txn: c.Txn, first: c.Pos, count: 1})
	}
	if c.Snapshot == nil && (len(o.lens) >= b.cfg.Records || len(o.body) >= b.cfg.Bytes) {
		b.close(o)
	}
}

func (b *Batcher) maxPayload() int64 {
	if b.cfg.MaxPayload == nil {
		return 0
	}
	return b.cfg.MaxPayload()
}

// estimate bounds the headers of a message of o (nil: of c alone) with c
// added.
func (b *Batcher) estimate(o *open, c *Change) int {
	if o == nil {
		return fixedRoom + len(c.Subject) + len(c.Headers.sig) + len(c.Leaf) + runRoom
	}
	return o.hdrBytes + digits(len(c.Data)) + 1 + runRoom + lsnDeltaRoom(o.lsns[len(o.lsns)-1], c.LSN)
}

// lsnDeltaRoom is what a record at lsn after one at prev adds to
// Redms-Lsn-Deltas.
func lsnDeltaRoom(prev, lsn uint64) int {
	d := int64(lsn - prev)
	if d < 0 {
		return digits(int(-d)) + 2
	}
	return digits(int(d)) + 1
}

// fits reports whether c may join o: the body stays within Bytes (a body
// reaching it closes at once, so this only holds back a change that would
// pass it) and the message within the max payload.
func (b *Batcher) fits(o *open, c *Change, maxPayload int64) bool {
	size := len(o.body) + 1 + len(c.Data)
	if size > b.cfg.Bytes {
		return false
	}
	return maxPayload <= 0 || int64(size+b.estimate(o, c)) <= maxPayload
}

func (b *Batcher) open(s *subject, c *Change, now time.Time) *open {
	guess := max(s.size, 2*len(c.Data))
	o := &open{s: s, hdr: c.Headers, snap: c.Snapshot, leaf: c.Leaf, at: now, first: c.Pos, firstLSN: c.LSN,
		body:     b.body(min(guess, b.cfg.Bytes+len(c.Data))),
		lens:     s.lens[:0],
		lsns:     s.lsns[:0],
		hdrBytes: b.estimate(nil, c),
	}
	s.open = o
	b.opened = append(b.opened, o)
	return o
}

// close turns o into a message.
func (b *Batcher) close(o *open) {
	o.closed = true
	o.s.open = nil
	o.s.size = len(o.body)
	o.s.lens, o.s.lsns = o.lens, o.lsns
	m := b.meta(o.s, o.hdr, o.runs[len(o.runs)-1].txn)
	m.LSN = pglogrepl.LSN(o.firstLSN).String()
	m.Pos, m.PosLast = o.first, o.last
	m.Snapshot = o.snap
	msg := Message{Changes: len(o.lens), owned: true}
	if len(o.lens) == 1 {
		m.Leaf = o.leaf
		msg.Txns = []TxnCount{{o.runs[0].txn, 1}}
	} else {
		m.Lens, m.LSNs = o.lens, o.lsns
		m.Runs = make([]walheader.Run, len(o.runs))
		msg.Txns = make([]TxnCount, len(o.runs))
		for i, r := range o.runs {
			m.Runs[i] = walheader.Run{Base: r.first.Base, First: r.first.Index, Count: r.count, Xid: r.txn.Xid}
			if r.txn.commitLSN != 0 {
				m.Runs[i].CommitLSN = pglogrepl.LSN(r.txn.commitLSN).String()
				m.Runs[i].CommitTime = r.txn.commitTime
			}
			msg.Txns[i] = TxnCount{r.txn, r.count}
		}
	}
	msg.Msg = &nats.Msg{Subject: o.s.name, Header: m.Header(o.s.name), Data: o.body}
	o.s.last, o.s.hasLast = o.last, true
	b.out = append(b.out, msg)
}

// meta is what every message on s carries: prev, the table's headers, and
// the transaction headers of txn (the message's last change's).
func (b *Batcher) meta(s *subject, h *Headers, txn *Txn) walheader.Meta {
	m := walheader.Meta{Keys: h.Keys, KeySource: h.KeySource, Types: h.Types, Missing: h.Missing,
		Prev: s.last, HasPrev: s.hasLast, Xid: txn.Xid}
	if txn.commitLSN != 0 {
		m.CommitLSN = pglogrepl.LSN(txn.commitLSN).String()
		m.CommitTime = txn.commitTime
	}
	return m
}

// alone makes c a message of its own, or its parts when it does not fit
// the max payload.
func (b *Batcher) alone(s *subject, c *Change, maxPayload int64) {
	m := b.meta(s, c.Headers, c.Txn)
	m.LSN = pglogrepl.LSN(c.LSN).String()
	m.Pos, m.PosLast, m.Leaf, m.Partition, m.Snapshot = c.Pos, c.Pos, c.Leaf, c.Partition, c.Snapshot
	msg := &nats.Msg{Subject: s.name, Header: m.Header(s.name), Data: c.Data}
	s.last, s.hasLast = c.Pos, true
	if maxPayload <= 0 || int64(msg.Size()) <= maxPayload {
		c.Txn.Pending++
		b.out = append(b.out, Message{Msg: msg, Changes: 1, Txns: []TxnCount{{c.Txn, 1}}})
		return
	}
	hdr := msg.Size() - len(msg.Subject) - len(msg.Data) + partRoom
	room := max(int(maxPayload)-hdr, 1024)
	n := (len(c.Data) + room - 1) / room
	for k := 1; k <= n; k++ {
		m.Part, m.Parts = k, n
		part := &nats.Msg{Subject: s.name, Header: m.Header(s.name), Data: c.Data[(k-1)*room : min(k*room, len(c.Data))]}
		c.Txn.Pending++
		b.out = append(b.out, Message{Msg: part, Changes: 1, Txns: []TxnCount{{c.Txn, 1}}})
	}
}

// body is a buffer for a batch's body of about n bytes.
func (b *Batcher) body(n int) []byte {
	if k := len(b.free); k > 0 && cap(b.free[k-1]) >= n {
		buf := b.free[k-1]
		b.free[k-1] = nil
		b.free = b.free[:k-1]
		return buf
	}
	return make([]byte, 0, n)
}

// Release takes back the body of m once it has a PubAck (JetStream holds
// it; capture sends it no more), for a later batch to fill.
func (b *Batcher) Release(m Message) {
	if m.owned && len(b.free) < keepFree {
		b.free = append(b.free, m.Msg.Data[:0])
	}
}

// Deadline is when the oldest open batch lingered long enough; false when
// none is open.
func (b *Batcher) Deadline() (time.Time, bool) {
	b.skipClosed()
	if len(b.opened) == 0 {
		return time.Time{}, false
	}
	return b.opened[0].at.Add(b.cfg.Linger), true
}

// Expire closes every batch that lingered Linger by now.
func (b *Batcher) Expire(now time.Time) {
	for b.skipClosed(); len(b.opened) > 0 && !now.Before(b.opened[0].at.Add(b.cfg.Linger)); b.skipClosed() {
		b.close(b.opened[0])
	}
}

// Flush closes every open batch.
func (b *Batcher) Flush() {
	for _, o := range b.opened {
		if !o.closed {
			b.close(o)
		}
	}
	clear(b.opened)
	b.opened = b.opened[:0]
}

// Open reports whether a batch is open.
func (b *Batcher) Open() bool {
	b.skipClosed()
	return len(b.opened) > 0
}

func (b *Batcher) skipClosed() {
	i := 0
	for i < len(b.opened) && b.opened[i].closed {
		b.opened[i] = nil
		i++
	}
	if i > 0 {
		b.opened = b.opened[i:]
	}
}

// Take returns the messages closed since the last Take, in the order they
// closed (per subject that is position order).
func (b *Batcher) Take() []Message {
	out := b.out
	b.out = nil
	return out
}

// Ready reports how many closed messages wait to be taken.
func (b *Batcher) Ready() int { return len(b.out) }

// digits is the length of n in decimal.
func digits(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// encodeJSON renders a header value, "" for a nil map.
func encodeJSON[T any](m map[string]T) string {
	if m == nil {
		return ""
	}
	b, _ := json.Marshal(m) // maps of strings cannot fail
	return string(b)
}
