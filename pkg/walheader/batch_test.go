package walheader

import (
	"reflect"
	"testing"
	"time"
)

func TestRuns(t *testing.T) {
	at := time.Date(2026, 12, 1, 0, 0, 0, 5, time.UTC)
	runs := []Run{
		{Base: 0x16B3748, First: 0, Count: 3, Xid: 731, CommitLSN: "0/16B3900", CommitTime: at},
		{Base: 0x16B3900, First: 5, Count: 2},
	}
	text := EncodeRuns(runs)
	if want := "16B3748.0.3.731.0/16B3900.1796083200000000005;16B3900.5.2..."; text != want {
		t.Fatalf("EncodeRuns = %q, want %q", text, want)
	}
	back, err := DecodeRuns(text)
	if err != nil || !reflect.DeepEqual(back, runs) {
		t.Fatalf("DecodeRuns(%q) = %+v, %v; want %+v", text, back, err, runs)
	}
	if got, want := Positions(runs), []Pos{{0x16B3748, 0}, {0x16B3748, 1}, {0x16B3748, 2}, {0x16B3900, 5}, {0x16B3900, 6}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Positions = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "1.0.1..", "x.0.1...", "1.x.1...", "1.0.0...", "1.0.1.x..", "1.0.1...t", "1.0.1...;"} {
		if r, err := DecodeRuns(bad); err == nil {
			t.Errorf("DecodeRuns(%q) = %+v, want an error", bad, r)
		}
	}
}

func TestBody(t *testing.T) {
	recs := [][]byte{
		[]byte("table public.t: INSERT: id[integer]:1 s[text]:'two\nlines'"),
		[]byte(""),
		[]byte("table public.t: DELETE: id[integer]:1"),
	}
	body := JoinBody(nil, recs)
	lens := []int{len(recs[0]), 0, len(recs[2])}
	text := EncodeLens(lens)
	back, err := DecodeLens(text)
	if err != nil || !reflect.DeepEqual(back, lens) {
		t.Fatalf("DecodeLens(%q) = %v, %v", text, back, err)
	}
	got, err := SplitBody(body, lens)
	if err != nil || !reflect.DeepEqual(got, recs) {
		t.Fatalf("SplitBody = %q, %v; want %q", got, err, recs)
	}
	for name, l := range map[string][]int{
		"too long":       {len(recs[0]), 0, len(recs[2]) + 1},
		"bytes left":     {len(recs[0]), 0, len(recs[2]) - 1},
		"no separator":   {len(recs[0]) - 1, 0, len(recs[2]) + 1},
		"fewer than two": {len(body) + 1},
	} {
		if r, err := SplitBody(body, l); err == nil {
			t.Errorf("%s: SplitBody = %q, want an error", name, r)
		}
	}
	for _, bad := range []string{"", "1,,2", "-1", "a"} {
		if l, err := DecodeLens(bad); err == nil {
			t.Errorf("DecodeLens(%q) = %v, want an error", bad, l)
		}
	}
}

func TestBatchHeaders(t *testing.T) {
	runs := []Run{{Base: 0x10, First: 0, Count: 2, Xid: 9, CommitLSN: "0/20", CommitTime: time.Unix(5, 0).UTC()}, {Base: 0x20, First: 0, Count: 1}}
	m := Meta{LSN: "0/11", Pos: Pos{Base: 0x10}, PosLast: Pos{Base: 0x20}, Lens: []int{3, 4, 5}, Runs: runs, LSNs: []uint64{0x11, 0x18, 0x12}}
	h := m.Header("shop")
	if got := h.Get(MsgID); got != "shop:0/10:0-0/20:0" {
		t.Errorf("batch id %q", got)
	}
	if got := h.Get(LSNDeltas); got != "7,-6" {
		t.Errorf("%s %q, want 7,-6", LSNDeltas, got)
	}
	back, err := Parse(h)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Lens, m.Lens) || !reflect.DeepEqual(back.Runs, m.Runs) || !reflect.DeepEqual(back.LSNs, m.LSNs) {
		t.Fatalf("Parse = %+v, want lens %v runs %+v lsns %v", back, m.Lens, m.Runs, m.LSNs)
	}
	for name, deltas := range map[string]string{"deltas missing": "", "too few deltas": "7", "too many deltas": "1,2,3", "bad delta": "1,x"} {
		bad := m.Header("shop")
		bad.Set(LSNDeltas, deltas)
		if got, err := Parse(bad); err == nil {
			t.Errorf("%s: Parse = %+v, want an error", name, got)
		}
	}
	for name, hdrs := range map[string][2]string{
		"lens alone":     {"3,4,5", ""},
		"count mismatch": {"3,4", EncodeRuns(runs)},
		"first mismatch": {"3,4,5", EncodeRuns([]Run{{Base: 0x11, Count: 2}, {Base: 0x20, Count: 1}})},
		"last mismatch":  {"3,4,5", EncodeRuns([]Run{{Base: 0x10, Count: 3}})},
		"runs overlap":   {"3,4,5", EncodeRuns([]Run{{Base: 0x10, Count: 1}, {Base: 0x20, Count: 1}, {Base: 0x20, Count: 1}})},
	} {
		bad := m.Header("shop")
		bad.Set(Lens, hdrs[0])
		if hdrs[1] == "" {
			bad.Del(Txns)
		} else {
			bad.Set(Txns, hdrs[1])
		}
		if got, err := Parse(bad); err == nil {
			t.Errorf("%s: Parse = %+v, want an error", name, got)
		}
	}
}
