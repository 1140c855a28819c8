package walheader

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestNames(t *testing.T) {
	// The contract's names, spelled out: a typo here breaks capture ↔ loader.
	for got, want := range map[string]string{
		MsgID: "Nats-Msg-Id", LSN: "Redms-Lsn", Ordinal: "Redms-Ordinal",
		CommitLSN: "Redms-Commit-Lsn", Xid: "Redms-Xid", CommitTime: "Redms-Commit-Time",
		Keys: "Redms-Keys", KeySource: "Redms-Key-Source", Leaf: "Redms-Leaf",
		FirstPos: "Redms-Pos", LastPos: "Redms-Pos-Last", PrevPos: "Redms-Prev-Pos", Part: "Redms-Part",
		Types: "Redms-Types", Missing: "Redms-Missing", PartitionBounds: "Redms-Partition",
	} {
		if got != want {
			t.Errorf("header %q, want %q", got, want)
		}
	}
	// nats.go's own dedup header must be the one we set.
	if MsgID != nats.MsgIdHdr {
		t.Errorf("MsgID = %q, nats.go uses %q", MsgID, nats.MsgIdHdr)
	}
}

func TestMsgIDFor(t *testing.T) {
	for _, tc := range []struct {
		db, lsn string
		ord     int
		want    string
	}{
		{"shop", "0/16B3748", 0, "shop:0/16B3748:0"},
		{"shop", "0/16B3748", 12, "shop:0/16B3748:12"},
		{"stdin", "0/7", 0, "stdin:0/7:0"},
	} {
		if got := MsgIDFor(tc.db, tc.lsn, tc.ord); got != tc.want {
			t.Errorf("MsgIDFor(%q, %q, %d) = %q, want %q", tc.db, tc.lsn, tc.ord, got, tc.want)
		}
	}
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		keys []string
		want string
	}{
		{nil, "[]"},
		{[]string{}, "[]"},
		{[]string{"id"}, `["id"]`},
		{[]string{"tenant id", `we"ird`, "é"}, `["tenant id","we\"ird","é"]`},
	} {
		got := EncodeKeys(tc.keys)
		if got != tc.want {
			t.Errorf("EncodeKeys(%q) = %s, want %s", tc.keys, got, tc.want)
		}
		back, err := DecodeKeys(got)
		if err != nil {
			t.Fatalf("DecodeKeys(%s): %v", got, err)
		}
		if back == nil || len(back) != len(tc.keys) || (len(back) > 0 && !reflect.DeepEqual(back, tc.keys)) {
			t.Errorf("DecodeKeys(%s) = %#v, want %q", got, back, tc.keys)
		}
	}
	for _, bad := range []string{"", "id", "null", `{"a":1}`, `[1]`, `["a"`} {
		if got, err := DecodeKeys(bad); err == nil {
			t.Errorf("DecodeKeys(%q) = %q, want an error", bad, got)
		}
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	m := Meta{
		LSN: "0/16B3748", Ordinal: 2, CommitLSN: "0/16B3800", Xid: 4294967295,
		CommitTime: time.Date(2026, 11, 25, 3, 4, 5, 600000000, time.FixedZone("x", 3600)),
		Keys:       []string{"a", "b"}, KeySource: KeySourcePrimaryKey, Leaf: `public."orders_2026"`,
	}
	h := m.Header("shop")
	for name, want := range map[string]string{
		MsgID: "shop:0/16B3748:2", LSN: "0/16B3748", Ordinal: "2", CommitLSN: "0/16B3800",
		Xid: "4294967295", CommitTime: "2026-11-25T02:04:05.600000000Z", Keys: `["a","b"]`,
		KeySource: "primary-key", Leaf: `public."orders_2026"`,
	} {
		if got := h.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	back, err := Parse(h)
	if err != nil {
		t.Fatal(err)
	}
	m.CommitTime = m.CommitTime.UTC()
	if !reflect.DeepEqual(back, m) {
		t.Fatalf("Parse(Header(m)) = %+v, want %+v", back, m)
	}

	noLeaf := Meta{LSN: "0/1", Keys: nil, KeySource: KeySourceNone}.Header("d")
	if _, ok := noLeaf[Leaf]; ok {
		t.Error("empty Leaf was written as a header")
	}
	if _, ok := noLeaf[CommitTime]; ok {
		t.Error("zero CommitTime was written as a header")
	}
}

func TestParseErrors(t *testing.T) {
	good := Meta{LSN: "0/1", Keys: []string{"id"}}.Header("d")
	for name, mutate := range map[string]func(nats.Header){
		"no lsn":       func(h nats.Header) { h.Del(LSN) },
		"empty keys":   func(h nats.Header) { h.Set(Keys, "") },
		"bad keys":     func(h nats.Header) { h.Set(Keys, "id") },
		"bad ordinal":  func(h nats.Header) { h.Set(Ordinal, "-1") },
		"bad xid":      func(h nats.Header) { h.Set(Xid, "x") },
		"bad time":     func(h nats.Header) { h.Set(CommitTime, "yesterday") },
		"ordinal text": func(h nats.Header) { h.Set(Ordinal, "one") },
	} {
		h := nats.Header{}
		for k, v := range good {
			h[k] = append([]string(nil), v...)
		}
		mutate(h)
		if m, err := Parse(h); err == nil {
			t.Errorf("%s: Parse = %+v, want an error", name, m)
		}
	}
	noKeys := Meta{LSN: "0/1"}.Header("d")
	noKeys.Del(Keys)
	if m, err := Parse(noKeys); err != nil || m.Keys != nil {
		t.Errorf("Parse without %s = %#v, %v; want nil keys, no error", Keys, m.Keys, err)
	}
	if m, err := Parse(Meta{LSN: "0/1"}.Header("d")); err != nil || m.Keys == nil || len(m.Keys) != 0 {
		t.Errorf("Parse with %s [] = %#v, %v; want empty non-nil keys", Keys, m.Keys, err)
	}
	h := nats.Header{}
	if _, err := Parse(h); !errors.Is(err, ErrMissing) {
		t.Errorf("Parse(empty) error %v does not wrap ErrMissing", err)
	}
}
