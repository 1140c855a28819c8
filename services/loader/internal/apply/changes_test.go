package apply

import (
	"testing"
	"time"

	"github.com/redms/redms/pkg/walheader"
)

// A batch is one Msg per record: its own position, LSN, commit time and
// the previous record's position as prev; the batch's prev on the first.
func TestAppendChangesSplitsABatch(t *testing.T) {
	t1 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	recs := [][]byte{
		[]byte("table public.t: INSERT: id[integer]:1"),
		[]byte("table public.t: UPDATE: id[integer]:1 v[text]:'a\nb'"),
		[]byte("table public.t: DELETE: id[integer]:2"),
	}
	meta := walheader.Meta{
		LSN: "0/A0", Keys: []string{"id"}, KeySource: walheader.KeySourcePrimaryKey,
		Pos: walheader.Pos{Base: 0x90, Index: 4}, PosLast: walheader.Pos{Base: 0xB0, Index: 0},
		Prev: walheader.Pos{Base: 0x90, Index: 3}, HasPrev: true,
		Types:   map[string]string{"v": "character varying(8)"},
		Lens:    []int{len(recs[0]), len(recs[1]), len(recs[2])},
		Runs:    []walheader.Run{{Base: 0x90, First: 4, Count: 2, CommitTime: t1}, {Base: 0xB0, First: 0, Count: 1}},
		LSNs:    []uint64{0xA0, 0xFFFFFFFF_000000AB, 0xC8},
		Missing: map[string]*string{"v": nil},
	}
	got := AppendChanges([]Msg{{Seq: 1}}, 7, meta, walheader.JoinBody(nil, recs))
	if len(got) != 4 || got[0].Seq != 1 {
		t.Fatalf("got %d messages, want the one before and 3", len(got))
	}
	want := []struct {
		pos, prev walheader.Pos
		lsn       string
		commit    time.Time
		value     string
	}{
		{walheader.Pos{Base: 0x90, Index: 4}, walheader.Pos{Base: 0x90, Index: 3}, "0/A0", t1, "1"},
		{walheader.Pos{Base: 0x90, Index: 5}, walheader.Pos{Base: 0x90, Index: 4}, "FFFFFFFF/AB", t1, "1"},
		{walheader.Pos{Base: 0xB0, Index: 0}, walheader.Pos{Base: 0x90, Index: 5}, "0/C8", time.Time{}, "2"},
	}
	for i, w := range want {
		m := got[i+1]
		if m.Seq != 7 || m.MetaErr != nil || m.RecordErr != nil {
			t.Fatalf("change %d: seq %d meta err %v record err %v", i, m.Seq, m.MetaErr, m.RecordErr)
		}
		if m.Meta.Pos != w.pos || m.Meta.Last() != w.pos || !m.Meta.HasPrev || m.Meta.Prev != w.prev || m.Meta.LSN != w.lsn || !m.Meta.CommitTime.Equal(w.commit) {
			t.Errorf("change %d: pos %s last %s prev %s (%v) lsn %s commit %v; want pos %s prev %s lsn %s commit %v",
				i, m.Meta.Pos, m.Meta.Last(), m.Meta.Prev, m.Meta.HasPrev, m.Meta.LSN, m.Meta.CommitTime, w.pos, w.prev, w.lsn, w.commit)
		}
		if m.Record.Columns[0].Value != w.value || m.Meta.Types["v"] != "character varying(8)" || m.Meta.Keys[0] != "id" {
			t.Errorf("change %d: record %+v types %v keys %v", i, m.Record, m.Meta.Types, m.Meta.Keys)
		}
		if m.Meta.Extra == nil || m.Meta.Extra.Missing == nil || !m.Meta.Extra.PosLast.IsZero() {
			t.Errorf("change %d: extra %+v, want the batch's missing values and no last position", i, m.Meta.Extra)
		}
	}
	if got[2].Record.Columns[1].Value != "a\nb" {
		t.Errorf("a newline inside a value cut the record: %+v", got[2].Record)
	}

	// A body that disagrees with Redms-Lens is one message that parks.
	meta.Lens[1]++
	bad := AppendChanges(nil, 8, meta, walheader.JoinBody(nil, recs))
	if len(bad) != 1 || bad[0].MetaErr == nil || bad[0].Seq != 8 {
		t.Fatalf("bad lens: %+v", bad)
	}
	t.Log(bad[0].MetaErr)
}

// Every record of a batch that is a snapshot part carries the part's
// Redms-Snapshot: its range replace must not be lost when the part holds
// several records.
func TestAppendChangesKeepsTheSnapshotPart(t *testing.T) {
	recs := [][]byte{
		[]byte("table public.t: INSERT: id[integer]:1"),
		[]byte("table public.t: INSERT: id[integer]:2"),
	}
	snap := &walheader.Snapshot{ID: "s", Chunk: 1, Part: 2, Parts: 2, Columns: []string{"id"}}
	meta := walheader.Meta{
		LSN: "0/A0", Keys: []string{"id"}, KeySource: walheader.KeySourcePrimaryKey,
		Pos: walheader.Pos{Base: 0x90, Index: 1}, PosLast: walheader.Pos{Base: 0x90, Index: 2},
		Lens: []int{len(recs[0]), len(recs[1])}, Runs: []walheader.Run{{Base: 0x90, First: 1, Count: 2}},
		LSNs: []uint64{0xA0, 0xA0}, Snapshot: snap,
	}
	for i, m := range AppendChanges(nil, 7, meta, walheader.JoinBody(nil, recs)) {
		if m.Meta.Extra == nil || m.Meta.Extra.Snapshot != snap {
			t.Errorf("record %d: extra %+v, want the batch's Redms-Snapshot", i, m.Meta.Extra)
		}
	}
}
