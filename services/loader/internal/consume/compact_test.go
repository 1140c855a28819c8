package consume

import (
	"testing"
	"unsafe"

	"github.com/nats-io/nats.go"
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

func TestCompactHeaderSharesRepeatedValues(t *testing.T) {
	prev := compactHeader(nats.Header{"Redms-Lsn": {"0/1"}, "Redms-Xid": {"7"}, "X-Other": {"a"}}, nil)
	h := compactHeader(nats.Header{"Redms-Lsn": {"0/2"}, "Redms-Xid": {"7"}, "X-Other": {"b"}}, prev)
	if h.Get("Redms-Lsn") != "0/2" || h.Get("Redms-Xid") != "7" || h.Get("X-Other") != "b" {
		t.Fatalf("values changed: %v", h)
	}
	if unsafe.SliceData(h["Redms-Xid"]) != unsafe.SliceData(prev["Redms-Xid"]) {
		t.Fatal("equal value not shared with the previous header")
	}
	if unsafe.SliceData(h["Redms-Lsn"]) == unsafe.SliceData(prev["Redms-Lsn"]) {
		t.Fatal("different values shared")
	}
}
