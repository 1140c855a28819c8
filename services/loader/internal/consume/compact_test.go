package consume

import (
	"testing"
	"unsafe"

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
	bad := windowMsg(3, map[string][]string{}, []byte("table public.t: INSERT: id[integer]:3"), &m)
	if bad.MetaErr == nil {
		t.Fatal("headers without an LSN parsed")
	}
}

func TestGrowStopsAtTheRecordLimit(t *testing.T) {
	var msgs []apply.Msg
	for i := range 1000 {
		msgs = append(grow(msgs, 1000), apply.Msg{Seq: uint64(i + 1)})
	}
	if len(msgs) != 1000 || cap(msgs) != 1000 || msgs[999].Seq != 1000 || msgs[0].Seq != 1 {
		t.Fatalf("len %d cap %d", len(msgs), cap(msgs))
	}
	// Past the limit (a limit lowered while a window fills) it still grows.
	if got := grow(msgs, 1000); cap(got) <= 1000 || len(got) != 1000 {
		t.Fatalf("past the limit: len %d cap %d", len(got), cap(got))
	}
}
