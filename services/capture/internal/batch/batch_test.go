package batch

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redms/redms/pkg/walheader"
)

var (
	keyed   = NewHeaders([]string{"id"}, walheader.KeySourcePrimaryKey, nil, nil)
	t0      = time.Unix(1000, 0)
	subjA   = "redms.wal.shop.public.a"
	subjB   = "redms.wal.shop.public.b"
	payload = func() int64 { return 1 << 20 }
)

// src numbers changes per subject and transaction like the assembler.
type src struct {
	base  uint64
	txn   *Txn
	index map[string]uint64
	lsn   uint64
}

func newSrc() *src { return &src{base: 0x100, lsn: 0x100} }

func (s *src) begin(xid uint64) {
	s.txn, s.index = &Txn{Xid: xid}, map[string]uint64{}
}

func (s *src) commit() {
	s.lsn += 16
	s.txn.Commit(s.lsn, t0)
	s.base = s.lsn
}

func (s *src) change(subject string, h *Headers, text string) *Change {
	s.lsn += 8
	c := &Change{Subject: subject, Headers: h, Pos: walheader.Pos{Base: s.base, Index: s.index[subject]}, LSN: s.lsn, Data: []byte(text), Txn: s.txn}
	s.index[subject]++
	return c
}

func row(i int) string { return fmt.Sprintf("table public.a: INSERT: id[integer]:%d", i) }

// parsed is a message read back through walheader.
type parsed struct {
	meta walheader.Meta
	recs []string
	pos  []walheader.Pos
}

func parse(t *testing.T, m Message) parsed {
	t.Helper()
	meta, err := walheader.Parse(m.Msg.Header)
	if err != nil {
		t.Fatalf("%s %v: %v", m.Msg.Subject, m.Msg.Header, err)
	}
	p := parsed{meta: meta}
	if meta.Runs == nil {
		p.recs, p.pos = []string{string(m.Msg.Data)}, []walheader.Pos{meta.Pos}
	} else {
		recs, err := walheader.SplitBody(m.Msg.Data, meta.Lens)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			p.recs = append(p.recs, string(r))
		}
		p.pos = walheader.Positions(meta.Runs)
	}
	if len(p.recs) != m.Changes {
		t.Errorf("message counts %d changes, holds %d", m.Changes, len(p.recs))
	}
	return p
}

func TestCloseOnRecords(t *testing.T) {
	b := New(Config{Records: 3, Bytes: 1 << 20, Linger: time.Second, MaxPayload: payload})
	s := newSrc()
	s.begin(7)
	for i := range 7 {
		b.Add(s.change(subjA, keyed, row(i)), t0)
	}
	s.commit()
	out := b.Take()
	if len(out) != 2 {
		t.Fatalf("%d messages closed, want 2 of 3 records (the 7th lingers)", len(out))
	}
	b.Flush()
	out = append(out, b.Take()...)
	var prev walheader.Pos
	for i, m := range out {
		p := parse(t, m)
		wantN := []int{3, 3, 1}[i]
		if len(p.recs) != wantN {
			t.Errorf("message %d: %d records, want %d", i, len(p.recs), wantN)
		}
		if i > 0 && (!p.meta.HasPrev || p.meta.Prev != prev) {
			t.Errorf("message %d: prev %v %v, want the last position %v of the one before", i, p.meta.HasPrev, p.meta.Prev, prev)
		}
		if i == 0 && p.meta.HasPrev {
			t.Errorf("first message has prev %v", p.meta.Prev)
		}
		for j, r := range p.recs {
			if want := row(3*i + j); r != want {
				t.Errorf("message %d record %d: %q, want %q", i, j, r, want)
			}
			if p.pos[j] != (walheader.Pos{Base: 0x100, Index: uint64(3*i + j)}) {
				t.Errorf("message %d record %d at %v", i, j, p.pos[j])
			}
		}
		prev = p.pos[len(p.pos)-1]
	}
	// The last message was closed after the COMMIT: it carries it.
	if p := parse(t, out[2]); p.meta.CommitLSN == "" {
		t.Errorf("a batch closed after its transaction committed has no %s", walheader.CommitLSN)
	}
	if s.txn.Pending != 7 {
		t.Errorf("pending %d, want 7 (no PubAck yet)", s.txn.Pending)
	}
}

func TestCloseOnBytes(t *testing.T) {
	b := New(Config{Records: 1000, Bytes: 100, Linger: time.Second, MaxPayload: payload})
	s := newSrc()
	s.begin(1)
	var want []string
	for i := range 20 {
		r := row(i)
		want = append(want, r)
		b.Add(s.change(subjA, keyed, r), t0)
	}
	b.Flush()
	var got []string
	for _, m := range b.Take() {
		if len(m.Msg.Data) > 100 {
			t.Errorf("body of %d bytes, limit 100", len(m.Msg.Data))
		}
		got = append(got, parse(t, m).recs...)
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("records %q, want %q", got, want)
	}
}

// The max payload holds the body and the headers, Redms-Lens and -Txns
// included, however small the records and however many transactions.
func TestCloseOnMaxPayload(t *testing.T) {
	const max = 4096
	b := New(Config{Records: 100000, Bytes: 1 << 20, Linger: time.Second, MaxPayload: func() int64 { return max }})
	s := newSrc()
	n := 0
	for i := range 500 {
		s.begin(uint64(1000000 + i)) // one run per record
		b.Add(s.change(subjA, keyed, "x"), t0)
		s.commit()
	}
	b.Flush()
	for _, m := range b.Take() {
		if m.Msg.Size()-len(m.Msg.Subject) > max {
			t.Errorf("message of %d bytes, max payload %d", m.Msg.Size()-len(m.Msg.Subject), max)
		}
		n += len(parse(t, m).recs)
	}
	if n != 500 {
		t.Errorf("%d records, want 500", n)
	}
}

func TestCloseOnLinger(t *testing.T) {
	b := New(Config{Records: 1000, Bytes: 1 << 20, Linger: 5 * time.Millisecond, MaxPayload: payload})
	s := newSrc()
	s.begin(1)
	b.Add(s.change(subjA, keyed, row(1)), t0)
	b.Add(s.change(subjB, keyed, row(2)), t0.Add(3*time.Millisecond))
	if at, ok := b.Deadline(); !ok || !at.Equal(t0.Add(5*time.Millisecond)) {
		t.Errorf("deadline %v %v, want a's first change + 5ms", at, ok)
	}
	b.Expire(t0.Add(4 * time.Millisecond))
	if len(b.Take()) != 0 {
		t.Error("a batch closed before its linger passed")
	}
	b.Expire(t0.Add(5 * time.Millisecond))
	out := b.Take()
	if len(out) != 1 || out[0].Msg.Subject != subjA {
		t.Fatalf("closed %d, want a's batch", len(out))
	}
	if at, ok := b.Deadline(); !ok || !at.Equal(t0.Add(8*time.Millisecond)) {
		t.Errorf("deadline %v %v, want b's first change + 5ms", at, ok)
	}
	b.Expire(t0.Add(time.Second))
	if out := b.Take(); len(out) != 1 || out[0].Msg.Subject != subjB || b.Open() {
		t.Errorf("after b's linger: %d closed, open %v", len(out), b.Open())
	}
}

// A batch spans transactions (one run each) and a transaction spans
// batches; a subject's batches interleave with another subject's.
func TestSpansTransactions(t *testing.T) {
	b := New(Config{Records: 4, Bytes: 1 << 20, Linger: time.Second, MaxPayload: payload})
	s := newSrc()
	for x := range 3 {
		s.begin(uint64(50 + x))
		b.Add(s.change(subjA, keyed, row(10*x)), t0)
		b.Add(s.change(subjB, keyed, row(10*x+1)), t0)
		b.Add(s.change(subjA, keyed, row(10*x+2)), t0)
		s.commit()
	}
	b.Flush()
	out := b.Take()
	// a: 6 records = 4 + 2; b: 3 records.
	if len(out) != 3 {
		t.Fatalf("%d messages, want a(4), b(3), a(2)", len(out))
	}
	p := parse(t, out[0])
	if len(p.meta.Runs) != 2 || p.meta.Runs[0].Count != 2 || p.meta.Runs[1].Count != 2 || p.meta.Runs[0].Xid != 50 || p.meta.Runs[1].Xid != 51 {
		t.Errorf("a's first batch runs %+v, want 2 of xid 50 then 2 of 51", p.meta.Runs)
	}
	if p.meta.Runs[0].CommitLSN == "" || p.meta.Runs[1].CommitLSN != "" {
		t.Errorf("runs %+v: the committed transaction has its commit, the open one none", p.meta.Runs)
	}
	if p.meta.Xid != 51 || p.meta.CommitLSN != "" {
		t.Errorf("batch xid %d commit %q: want the last record's transaction (51, not committed when it closed)", p.meta.Xid, p.meta.CommitLSN)
	}
	if want := pglogLSN(0x108); p.meta.LSN != want {
		t.Errorf("%s %s, want the first record's %s", walheader.LSN, p.meta.LSN, want)
	}
	// Flush closes in the order batches opened: b's before a's second.
	if n := parse(t, out[1]); len(n.meta.Runs) != 3 || out[1].Msg.Subject != subjB {
		t.Errorf("b's batch on %s runs %+v, want one per transaction", out[1].Msg.Subject, n.meta.Runs)
	}
}

func pglogLSN(l uint64) string { return fmt.Sprintf("%X/%X", l>>32, l&0xFFFFFFFF) }

// A change of the table's headers closes its batch; leaves of one root
// with the same headers share batches, and Redms-Leaf is only on a message
// of one change.
func TestCloseOnHeaders(t *testing.T) {
	b := New(Config{Records: 100, Bytes: 1 << 20, Linger: time.Second, MaxPayload: payload})
	s := newSrc()
	s.begin(1)
	leafA := s.change(subjA, keyed, "table public.a_1: INSERT: id[integer]:1")
	leafA.Leaf = "public.a_1"
	b.Add(leafA, t0)
	sameKeys := NewHeaders([]string{"id"}, walheader.KeySourcePrimaryKey, nil, nil)
	leafB := s.change(subjA, sameKeys, "table public.a_2: INSERT: id[integer]:2")
	leafB.Leaf = "public.a_2"
	b.Add(leafB, t0)
	typed := NewHeaders([]string{"id"}, walheader.KeySourcePrimaryKey, map[string]string{"v": "numeric(5,2)"}, nil)
	b.Add(s.change(subjA, typed, "table public.a: INSERT: id[integer]:3 v[numeric]:1.5"), t0)
	b.Add(s.change(subjA, typed, "table public.a: INSERT: id[integer]:4 v[numeric]:1.5"), t0)
	day := "x"
	missing := NewHeaders([]string{"id"}, walheader.KeySourcePrimaryKey, map[string]string{"v": "numeric(5,2)"}, map[string]*string{"w": &day})
	single := s.change(subjA, missing, "table public.a_1: INSERT: id[integer]:5")
	single.Leaf = "public.a_1"
	b.Add(single, t0)
	b.Add(s.change(subjA, NewHeaders(nil, walheader.KeySourceNone, nil, nil), "table public.a: INSERT: id[integer]:6"), t0)
	b.Flush()
	out := b.Take()
	if len(out) != 4 {
		t.Fatalf("%d messages, want leaves(2), typed(2), missing(1), keyless(1)", len(out))
	}
	first := parse(t, out[0])
	if len(first.recs) != 2 || first.meta.Leaf != "" {
		t.Errorf("leaves' batch: %d records, leaf %q: want 2 and no %s", len(first.recs), first.meta.Leaf, walheader.Leaf)
	}
	if p := parse(t, out[1]); p.meta.Types["v"] != "numeric(5,2)" || len(p.recs) != 2 {
		t.Errorf("typed batch %+v", p.meta)
	}
	if p := parse(t, out[2]); p.meta.Leaf != "public.a_1" || p.meta.Missing["w"] == nil || p.meta.Lens != nil {
		t.Errorf("message of one change: %+v, want its leaf, no %s", p.meta, walheader.Lens)
	}
	if p := parse(t, out[3]); p.meta.KeySource != walheader.KeySourceNone || len(p.meta.Keys) != 0 {
		t.Errorf("keyless batch %+v", p.meta)
	}
}

// A TRUNCATE with Redms-Partition and a record over the max payload go as
// messages of their own, after what the subject's open batch held.
func TestAlone(t *testing.T) {
	const max = 4096
	b := New(Config{Records: 100, Bytes: 1 << 20, Linger: time.Second, MaxPayload: func() int64 { return max }})
	s := newSrc()
	s.begin(1)
	b.Add(s.change(subjA, keyed, row(1)), t0)
	tr := s.change(subjA, keyed, "table public.a_1: TRUNCATE: (no-flags)")
	tr.Partition, tr.Leaf = &walheader.Partition{Leaf: "public.a_1", Unbounded: "hash"}, "public.a_1"
	b.Add(tr, t0)
	b.Add(s.change(subjA, keyed, row(2)), t0)
	big := "table public.a: INSERT: id[integer]:3 v[text]:'" + strings.Repeat("y", 10000) + "'"
	b.Add(s.change(subjA, keyed, big), t0)
	b.Add(s.change(subjA, keyed, row(4)), t0)
	s.commit()
	b.Flush()
	out := b.Take()
	var joined bytes.Buffer
	var kinds []string
	var prev walheader.Pos
	for i, m := range out {
		p := parse(t, m)
		if m.Msg.Size()-len(m.Msg.Subject) > max {
			t.Errorf("message %d: %d bytes", i, m.Msg.Size())
		}
		switch {
		case p.meta.Parts > 0:
			kinds = append(kinds, "part")
			joined.Write(m.Msg.Data)
			if p.meta.Pos != (walheader.Pos{Base: 0x100, Index: 3}) || p.meta.Prev != (walheader.Pos{Base: 0x100, Index: 2}) {
				t.Errorf("part %d/%d at %v prev %v", p.meta.Part, p.meta.Parts, p.meta.Pos, p.meta.Prev)
			}
			if id := m.Msg.Header.Get(walheader.MsgID); id != fmt.Sprintf("%s:0/100:3:p%d", subjA, p.meta.Part) {
				t.Errorf("part id %q", id)
			}
		case p.meta.Partition != nil:
			kinds = append(kinds, "truncate")
			if p.meta.Leaf != "public.a_1" {
				t.Errorf("partition TRUNCATE without its leaf: %+v", p.meta)
			}
		default:
			kinds = append(kinds, fmt.Sprint(len(p.recs)))
		}
		if i > 0 && p.meta.Parts <= 1 && p.meta.Prev != prev {
			t.Errorf("message %d: prev %v, want %v", i, p.meta.Prev, prev)
		}
		if p.meta.Part == p.meta.Parts {
			prev = p.meta.PosLast
		}
	}
	got := strings.Join(kinds, " ")
	if !strings.HasPrefix(got, "1 truncate 1 part part part") || !strings.HasSuffix(got, "part 1") {
		t.Errorf("messages %s, want 1 truncate 1 part… 1", got)
	}
	if joined.String() != big {
		t.Error("the parts do not join to the record")
	}
	if s.txn.Pending != len(out) {
		t.Errorf("pending %d, want one per message (parts count each): %d", s.txn.Pending, len(out))
	}
}

// A new session closes what is open and starts the prev chains again.
func TestSession(t *testing.T) {
	b := New(Config{Records: 100, Bytes: 1 << 20, Linger: time.Second, MaxPayload: payload})
	b.Session(1)
	s := newSrc()
	s.begin(1)
	b.Add(s.change(subjA, keyed, row(1)), t0)
	b.Add(s.change(subjA, keyed, row(2)), t0)
	b.Flush()
	b.Add(s.change(subjA, keyed, row(3)), t0)
	b.Session(2)
	out := b.Take()
	if len(out) != 2 || b.Open() {
		t.Fatalf("%d messages closed at the new session, want 2", len(out))
	}
	s.begin(2)
	s.index[subjA] = 0
	b.Add(s.change(subjA, keyed, row(1)), t0)
	b.Flush()
	if p := parse(t, b.Take()[0]); p.meta.HasPrev {
		t.Errorf("the new session's first message has prev %v", p.meta.Prev)
	}
}
