package walheader

import (
	"reflect"
	"testing"
)

func str(s string) *string { return &s }

func TestSnapshotHeaderRoundTrip(t *testing.T) {
	if SnapshotHeader != "Redms-Snapshot" {
		t.Fatalf("SnapshotHeader = %q", SnapshotHeader)
	}
	s := &Snapshot{ID: "a1", Chunk: 3, Part: 2, Parts: 5, Columns: []string{"a", "b"},
		From: Key{str("1"), nil}, To: nil, Keep: []Key{{str("2"), str("x'y")}}}
	m := Meta{LSN: "0/1", Pos: Pos{Base: 1, Index: 2}, PosLast: Pos{Base: 1, Index: 2}, Keys: []string{"a", "b"}, Snapshot: s}
	h := m.Header("d")
	if got, want := h.Get(SnapshotHeader), `{"id":"a1","chunk":3,"part":2,"parts":5,"columns":["a","b"],"from":["1",null],"to":null,"keep":[["2","x'y"]]}`; got != want {
		t.Fatalf("header %s\n got %s\nwant %s", SnapshotHeader, got, want)
	}
	back, err := Parse(h)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Snapshot, s) {
		t.Fatalf("Parse gave %+v, want %+v", back.Snapshot, s)
	}
}

func TestSnapshotHeaderErrors(t *testing.T) {
	for name, v := range map[string]string{
		"not json":      `{`,
		"no id":         `{"chunk":1,"part":1,"parts":1,"columns":["id"]}`,
		"part past n":   `{"id":"x","chunk":1,"part":2,"parts":1,"columns":["id"]}`,
		"chunk 0":       `{"id":"x","chunk":0,"part":1,"parts":1,"columns":["id"]}`,
		"no columns":    `{"id":"x","chunk":1,"part":1,"parts":1}`,
		"bound width":   `{"id":"x","chunk":1,"part":1,"parts":1,"columns":["id"],"from":["1","2"]}`,
		"full, a range": `{"id":"x","chunk":1,"part":1,"parts":1,"full":true,"columns":["id"]}`,
	} {
		h := Meta{LSN: "0/1"}.Header("d")
		h.Set(SnapshotHeader, v)
		if m, err := Parse(h); err == nil {
			t.Errorf("%s: Parse = %+v, want an error", name, m.Snapshot)
		}
	}
	h := Meta{LSN: "0/1"}.Header("d")
	h.Set(SnapshotHeader, `{"id":"x","chunk":1,"part":1,"parts":1,"full":true}`)
	if m, err := Parse(h); err != nil || m.Snapshot == nil || !m.Snapshot.Full {
		t.Errorf("full replace: %+v, %v", m.Snapshot, err)
	}
}
