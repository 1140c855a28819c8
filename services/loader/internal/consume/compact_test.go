package consume

import (
	"testing"
	"unsafe"

	"github.com/redms/redms/pkg/walheader"
)

func TestArenaCopies(t *testing.T) {
	var a arena
	src := []byte("hello")
	got := a.copy(src)
	src[0] = 'j'
	if string(got) != "hello" || cap(got) != len(got) {
		t.Fatalf("copy = %q cap %d", got, cap(got))
	}
	big := make([]byte, arenaChunk+1)
	if b := a.copy(big); len(b) != len(big) {
		t.Fatalf("big copy len %d", len(b))
	}
	next := a.copy([]byte("x"))
	if string(next) != "x" || string(got) != "hello" {
		t.Fatalf("later copies disturbed earlier ones: %q %q", got, next)
	}
}

func TestWindowMsgSharesRepeatedValues(t *testing.T) {
	var a arena
	meta := func(lsn string) walheader.Meta {
		return walheader.Meta{LSN: lsn, CommitLSN: "0/9", Xid: 7, Keys: []string{"id"}, KeySource: walheader.KeySourcePrimaryKey}
	}
	prev := windowMsg(1, meta("0/1").Header("db"), []byte("a"), nil, &a)
	m := windowMsg(2, meta("0/2").Header("db"), []byte("b"), &prev, &a)
	if m.MetaErr != nil || m.Meta.LSN != "0/2" || m.Meta.CommitLSN != "0/9" || m.Meta.Xid != 7 || string(m.Data) != "b" {
		t.Fatalf("message changed: %+v", m)
	}
	if unsafe.StringData(m.Meta.CommitLSN) != unsafe.StringData(prev.Meta.CommitLSN) {
		t.Fatal("equal commit LSN not shared with the previous message")
	}
	if unsafe.SliceData(m.Meta.Keys) != unsafe.SliceData(prev.Meta.Keys) {
		t.Fatal("equal keys not shared with the previous message")
	}
	if unsafe.StringData(m.Meta.LSN) == unsafe.StringData(prev.Meta.LSN) {
		t.Fatal("different values shared")
	}
	bad := windowMsg(3, map[string][]string{}, []byte("c"), &m, &a)
	if bad.MetaErr == nil {
		t.Fatal("headers without an LSN parsed")
	}
}
