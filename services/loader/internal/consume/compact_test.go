package consume

import (
	"testing"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/apply"
)

func TestWindowMsgSharesRepeatedValues(t *testing.T) {
	meta := func(lsn string) walheader.Meta {
		return walheader.Meta{LSN: lsn, CommitLSN: "0/9", Xid: 7, Keys: []string{"id"}, KeySource: walheader.KeySourcePrimaryKey}
	}
	prev := windowMsg(1, meta("0/1").Header("db"), []byte("table public.t: INSERT: id[integer]:1"), nil)
	m := windowMsg(2, meta("0/2").Header("db"), []byte("table public.t: INSERT: id[integer]:2"), &prev)
	if m.MetaErr != nil || m.Meta.LSN != "0/2" || m.Meta.KeySource != walheader.KeySourcePrimaryKey || m.RecordErr != nil || m.Record.Columns[0].Value != "2" {
		t.Fatalf("message changed: %+v", m)
	}
	if unsafe.StringData(m.Meta.KeySource) != unsafe.StringData(prev.Meta.KeySource) {
		t.Fatal("equal key source not shared with the previous message")
	}
	if unsafe.SliceData(m.Meta.Keys) != unsafe.SliceData(prev.Meta.Keys) {
		t.Fatal("equal keys not shared with the previous message")
	}
	if unsafe.StringData(m.Meta.LSN) == unsafe.StringData(prev.Meta.LSN) {
		t.Fatal("different values shared")
	}
	typed := func(lsn string) walheader.Meta {
		mt := meta(lsn)
		mt.Types = map[string]string{"amount": "numeric(10,2)"}
		return mt
	}
	t1 := windowMsg(5, typed("0/5").Header("db"), []byte("table public.t: INSERT: id[integer]:5"), &m)
	t2 := windowMsg(6, typed("0/6").Header("db"), []byte("table public.t: INSERT: id[integer]:6"), &t1)
	if t2.Meta.Types["amount"] != "numeric(10,2)" || len(t1.Meta.Types) != 1 {
		t.Fatalf("declared types: %v, %v", t1.Meta.Types, t2.Meta.Types)
	}
	t1.Meta.Types["probe"] = "x" // the same map when shared
	if t2.Meta.Types["probe"] != "x" {
		t.Fatal("equal declared types not shared with the previous message")
	}
	yes := "yes"
	withMissing := func(lsn string) walheader.Meta {
		mt := meta(lsn)
		mt.Pos = walheader.Pos{Base: 9}
		mt.PosLast = mt.Pos
		mt.Missing = map[string]*string{"flag": &yes, "gone": nil}
		return mt
	}
	m1 := windowMsg(4, withMissing("0/4").Header("db"), []byte("table public.t: INSERT: id[integer]:4"), &m)
	m2 := windowMsg(5, withMissing("0/5").Header("db"), []byte("table public.t: INSERT: id[integer]:5"), &m1)
	if m1.Meta.Extra == nil || m2.Meta.Extra != m1.Meta.Extra || *m2.Meta.Extra.Missing["flag"] != "yes" {
		t.Fatalf("equal missing values not shared: %+v, %+v", m1.Meta.Extra, m2.Meta.Extra)
	}
	bad := windowMsg(3, map[string][]string{}, []byte("table public.t: INSERT: id[integer]:3"), &m)
	if bad.MetaErr == nil {
		t.Fatal("headers without an LSN parsed")
	}
}

func TestGrowStopsAtTheRecordLimit(t *testing.T) {
	var msgs []apply.Msg
	for i := range 1000 {
		msgs = append(grow(msgs, 1000, 1), apply.Msg{Seq: uint64(i + 1)})
	}
	if len(msgs) != 1000 || cap(msgs) != 1000 || msgs[999].Seq != 1000 || msgs[0].Seq != 1 {
		t.Fatalf("len %d cap %d", len(msgs), cap(msgs))
	}
	// Past the limit (a limit lowered while a window fills) it still grows.
	if got := grow(msgs, 1000, 1); cap(got) <= 1000 || len(got) != 1000 {
		t.Fatalf("past the limit: len %d cap %d", len(got), cap(got))
	}
}

// windowMsg is what a window keeps of a message of one change.
func windowMsg(seq uint64, h nats.Header, body []byte, prev *apply.Msg) apply.Msg {
	meta, err := walheader.Parse(h)
	var dst []apply.Msg
	if prev != nil {
		dst = []apply.Msg{*prev}
	}
	return appendMsgs(dst, seq, meta, err, body)[len(dst)]
}
