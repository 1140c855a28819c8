package walheader

import (
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestPos(t *testing.T) {
	for _, tc := range []struct {
		p    Pos
		text string
	}{
		{Pos{}, "0/0:0"},
		{Pos{Base: 0x16B3748, Index: 3}, "0/16B3748:3"},
		{Pos{Base: 0x1_0000_00FF, Index: 1 << 40}, "1/FF:1099511627776"},
		{Pos{Base: 1<<64 - 1, Index: 1<<64 - 1}, "FFFFFFFF/FFFFFFFF:18446744073709551615"},
		{Pos{Base: 0xA0B0C0D0E0F01020, Index: 10}, "A0B0C0D0/E0F01020:10"},
	} {
		if got := tc.p.String(); got != tc.text {
			t.Errorf("%+v.String() = %q, want %q", tc.p, got, tc.text)
		}
		back, err := ParsePos(tc.text)
		if err != nil || back != tc.p {
			t.Errorf("ParsePos(%q) = %+v, %v; want %+v", tc.text, back, err, tc.p)
		}
	}
	for _, bad := range []string{"", "0/1", "0/1:", ":1", "0:1", "G/1:0", "0/1:-1", "0/1:x", "100000000/0:0"} {
		if p, err := ParsePos(bad); err == nil {
			t.Errorf("ParsePos(%q) = %+v, want an error", bad, p)
		}
	}
	a, b, c := Pos{Base: 5, Index: 9}, Pos{Base: 6, Index: 0}, Pos{Base: 6, Index: 1}
	if !a.Less(b) || !b.Less(c) || c.Less(a) || a.Compare(a) != 0 || c.Compare(b) != 1 {
		t.Error("positions must order by base, then index")
	}
}

func TestMsgIDForPos(t *testing.T) {
	p1, p2 := Pos{Base: 0x16B3748, Index: 3}, Pos{Base: 0x16B3900, Index: 0}
	for _, tc := range []struct {
		first, last Pos
		suffix      string
		want        string
	}{
		{p1, p1, "", "shop:0/16B3748:3"},
		{p1, Pos{}, "", "shop:0/16B3748:3"},
		{p1, p2, "", "shop:0/16B3748:3-0/16B3900:0"},
		{p1, p1, "p1", "shop:0/16B3748:3:p1"},
	} {
		if got := MsgIDForPos("shop", tc.first, tc.last, tc.suffix); got != tc.want {
			t.Errorf("MsgIDForPos(%v, %v, %q) = %q, want %q", tc.first, tc.last, tc.suffix, got, tc.want)
		}
	}
}

func TestPositionHeadersRoundTrip(t *testing.T) {
	day := "2023-01-01"
	m := Meta{
		LSN: "0/16B3748", CommitLSN: "0/16B3800", Xid: 7,
		CommitTime: time.Date(2026, 11, 25, 3, 4, 5, 0, time.UTC),
		Keys:       []string{"id"}, KeySource: KeySourcePrimaryKey,
		Pos: Pos{Base: 0x16B3700, Index: 2}, PosLast: Pos{Base: 0x16B3700, Index: 2},
		Prev: Pos{Base: 0x16B3700, Index: 1}, HasPrev: true,
		Part: 2, Parts: 3,
		Types:   map[string]string{"amount": "numeric(10,2)", "code": "character varying(20)"},
		Missing: map[string]*string{"flag": &day, "gone": nil},
		Partition: &Partition{Leaf: "public.orders_2023_01", Levels: []PartitionLevel{{
			Strategy: StrategyRange, Columns: []string{"at"},
			From: []Bound{{Kind: BoundValue, Value: day}}, To: []Bound{{Kind: BoundMaxValue}},
		}}},
	}
	h := m.Header("shop")
	for name, want := range map[string]string{
		MsgID: "shop:0/16B3700:2:p2", FirstPos: "0/16B3700:2", PrevPos: "0/16B3700:1", Part: "2/3",
		Types: `{"amount":"numeric(10,2)","code":"character varying(20)"}`,
	} {
		if got := h.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if _, ok := h[LastPos]; ok {
		t.Errorf("%s written for a message of one change", LastPos)
	}
	back, err := Parse(h)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Fatalf("Parse(Header(m)) =\n%+v\nwant\n%+v", back, m)
	}

	batch := Meta{LSN: "0/1", Pos: Pos{Base: 1}, PosLast: Pos{Base: 9, Index: 4}}.Header("d")
	if got := batch.Get(LastPos); got != "0/9:4" {
		t.Errorf("%s = %q, want 0/9:4", LastPos, got)
	}

	// Positions are per subject: the same position on two subjects gets
	// two ids.
	a := Meta{LSN: "0/1", Pos: Pos{Base: 1}}.Header("redms.wal.shop.public.a")
	b := Meta{LSN: "0/1", Pos: Pos{Base: 1}}.Header("redms.wal.shop.public.b")
	if a.Get(MsgID) != "redms.wal.shop.public.a:0/1:0" || b.Get(MsgID) == a.Get(MsgID) {
		t.Errorf("ids %q and %q: want the subject in each", a.Get(MsgID), b.Get(MsgID))
	}
	if _, ok := a[Ordinal]; ok {
		t.Errorf("a message with positions has %s", Ordinal)
	}

	legacy := Meta{LSN: "0/1", Ordinal: 1}.Header("d")
	for _, name := range []string{FirstPos, LastPos, PrevPos, Part, Types, Missing, PartitionBounds} {
		if _, ok := legacy[name]; ok {
			t.Errorf("a message without positions has header %s", name)
		}
	}
	if got, err := Parse(legacy); err != nil || !got.Pos.IsZero() || got.HasPrev {
		t.Errorf("Parse(legacy) = %+v, %v; want zero positions", got, err)
	}
}

func TestPositionHeaderErrors(t *testing.T) {
	good := Meta{LSN: "0/1", Pos: Pos{Base: 4, Index: 1}}.Header("d")
	for name, mutate := range map[string]func(nats.Header){
		"bad pos":        func(h nats.Header) { h.Set(FirstPos, "4") },
		"last before":    func(h nats.Header) { h.Set(LastPos, "0/4:0") },
		"last alone":     func(h nats.Header) { h.Del(FirstPos); h.Set(LastPos, "0/5:0") },
		"bad prev":       func(h nats.Header) { h.Set(PrevPos, "x") },
		"part zero":      func(h nats.Header) { h.Set(Part, "0/2") },
		"part past":      func(h nats.Header) { h.Set(Part, "3/2") },
		"part text":      func(h nats.Header) { h.Set(Part, "one") },
		"types not json": func(h nats.Header) { h.Set(Types, "{") },
		"missing array":  func(h nats.Header) { h.Set(Missing, "[1]") },
		"partition text": func(h nats.Header) { h.Set(PartitionBounds, `"x"`) },
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
}
