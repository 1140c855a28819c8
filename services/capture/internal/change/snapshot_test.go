package change

import (
	"testing"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/walheader"
)

// fakeSnaps splices a chunk at the high watermark whose content is "splice".
type fakeSnaps struct{ committed []uint64 }

func (f *fakeSnaps) Observe(string, *testdecoding.Record) {}
func (f *fakeSnaps) Reset()                               {}
func (f *fakeSnaps) Committed(_ uint32, lsn uint64)       { f.committed = append(f.committed, lsn) }
func (f *fakeSnaps) Watermark(rec *testdecoding.Record, raw []byte) (SnapshotChunk, bool) {
	if rec.Content != "splice" {
		return SnapshotChunk{}, false
	}
	h := &walheader.Snapshot{ID: "s", Chunk: 1, Part: 1, Parts: 2, Columns: []string{"id"}}
	r := &walheader.Snapshot{ID: "s", Chunk: 1, Part: 2, Parts: 2, Columns: []string{"id"}}
	return SnapshotChunk{Table: testdecoding.Table{Schema: "public", Name: "t"},
		Records: [][]byte{raw, []byte("table public.t: INSERT: id[integer]:9")}, Headers: []*walheader.Snapshot{h, r}}, true
}

// A snapshot chunk is a transaction of its own "committed" at its
// watermark's LSN, and the transaction after it is at its own COMMIT
// whether or not a chunk is spliced there: a session that reads a
// watermark again without its chunk (capture restarted) gives the next
// transaction the position the first session gave it, never one of the
// chunk's.
func TestWatermarkPositions(t *testing.T) {
	for _, splice := range []bool{true, false} {
		content := "other"
		if splice {
			content = "splice"
		}
		f := &fakeSnaps{}
		a := newAssembler(newResolver(), AssemblerConfig{Snapshots: f}, TablesConfig{})
		a.Start(0x50)
		out := feed(t, a, "BEGIN 7", "table public.t: INSERT: id[integer]:1", "COMMIT 7",
			"message: transactional: 0 prefix: redms-snapshot, sz: "+itoa(len(content))+" content:"+content,
			"BEGIN 8", "table public.t: INSERT: id[integer]:2", "COMMIT 8")
		last := out[len(out)-1]
		// The watermark is the 4th line, LSN 103 (0x67); COMMIT 8 ends at 0x6A.
		if got := hdr(last, len(last.Messages)-1, walheader.FirstPos); got != "0/6A:0" {
			t.Errorf("splice %v: the transaction after the watermark at %s, want 0/6A:0", splice, got)
		}
		if !splice {
			if len(out) != 2 {
				t.Errorf("no splice: %d chunks, want 2", len(out))
			}
			continue
		}
		// A snapshot part closes when the next message of the subject
		// starts (or lingers out): the rig takes it with the next chunk.
		msgs := append(out[1].Messages, out[2].Messages...)
		if len(out) != 3 || len(msgs) != 3 || out[1].Commit != 103 {
			t.Fatalf("splice: chunks %+v", out)
		}
		for i, want := range []string{"0/67:0", "0/67:1"} {
			if got := msgs[i].Header.Get(walheader.FirstPos); got != want {
				t.Errorf("chunk record %d at %s, want %s", i, got, want)
			}
			if msgs[i].Header.Get(walheader.SnapshotHeader) == "" {
				t.Errorf("chunk record %d without %s", i, walheader.SnapshotHeader)
			}
		}
		if len(f.committed) != 3 || f.committed[1] != 103 {
			t.Errorf("committed %v, want the chunk's at 103", f.committed)
		}
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
