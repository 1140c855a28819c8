package consume

import (
	"testing"
	"unsafe"

	"github.com/redms/redms/pkg/walheader"
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
