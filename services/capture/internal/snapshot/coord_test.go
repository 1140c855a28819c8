package snapshot

import (
	"encoding/json"
	"testing"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/walheader"
)

func markRec(t *testing.T, token string, high bool) *testdecoding.Record {
	b, _ := json.Marshal(mark{Token: token, High: high})
	return &testdecoding.Record{Kind: testdecoding.KindMessage, Prefix: Prefix, Content: string(b)}
}

func s(v string) *string { return &v }

func TestCoordinatorKeepsChangedKeys(t *testing.T) {
	c := NewCoordinator()
	tb := testdecoding.Table{Schema: "public", Name: "t"}
	ch := &chunk{token: "tok", subject: "redms.wal.d.public.t", table: tb, keyCols: []string{"id"}, id: "s1", number: 2, parts: 2}
	c.register(ch)
	upd := &testdecoding.Record{Kind: testdecoding.KindUpdate, Table: tb, Columns: []testdecoding.Column{{Name: "id", Value: "3"}, {Name: "v", Value: "x"}}}
	c.Observe(ch.subject, upd) // before the low watermark: not the chunk's business
	if _, ok := c.Watermark(markRec(t, "tok", false), nil); ok {
		t.Fatal("low watermark returned a chunk")
	}
	c.Observe(ch.subject, &testdecoding.Record{Kind: testdecoding.KindDelete, Table: tb, Columns: []testdecoding.Column{{Name: "id", Value: "2"}}})
	c.Observe("redms.wal.d.public.other", &testdecoding.Record{Kind: testdecoding.KindDelete, Columns: []testdecoding.Column{{Name: "id", Value: "4"}}})
	rows := []row{}
	for _, id := range []string{"1", "2", "3", "4", "5"} {
		k := walheader.Key{s(id)}
		rows = append(rows, row{key: encodeKey(k), vals: k, text: []byte("row " + id)})
	}
	c.setRows(ch, rows, walheader.Key{s("0")}, walheader.Key{s("5")}, nil)
	out, ok := c.Watermark(markRec(t, "tok", true), []byte("high"))
	if !ok {
		t.Fatal("high watermark returned no chunk")
	}
	var got []string
	for i, r := range out.Records {
		h := out.Headers[i]
		got = append(got, string(r)+" "+walheader.EncodeSnapshot(h))
	}
	want := []string{
		`high {"id":"s1","chunk":2,"part":1,"parts":3,"columns":["id"],"from":["5"],"to":["5"],"keep":[["2"]]}`,
		`row 1 {"id":"s1","chunk":2,"part":2,"parts":3,"columns":["id"],"from":["0"],"to":["3"],"keep":[["2"]]}`,
		`row 3 {"id":"s1","chunk":2,"part":2,"parts":3,"columns":["id"],"from":["0"],"to":["3"],"keep":[["2"]]}`,
		`row 4 {"id":"s1","chunk":2,"part":3,"parts":3,"columns":["id"],"from":["3"],"to":["5"],"keep":[["2"]]}`,
		`row 5 {"id":"s1","chunk":2,"part":3,"parts":3,"columns":["id"],"from":["3"],"to":["5"],"keep":[["2"]]}`,
	}
	if len(got) != len(want) {
		t.Fatalf("records:\n%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	c.Committed(7, 0x100)
	select {
	case <-ch.done:
	default:
		t.Fatal("commit did not finish the chunk")
	}
	if _, commit, _ := c.state(ch); commit != 0x100 {
		t.Errorf("commit %x", commit)
	}
}

func TestCoordinatorKeylessChangeIsDirty(t *testing.T) {
	c := NewCoordinator()
	ch := &chunk{token: "k", subject: "sub", table: testdecoding.Table{Schema: "public", Name: "n"}, id: "s", number: 1}
	c.register(ch)
	c.Watermark(markRec(t, "k", false), nil)
	c.Observe("sub", &testdecoding.Record{Kind: testdecoding.KindInsert})
	c.setRows(ch, nil, nil, nil, nil)
	if _, ok := c.Watermark(markRec(t, "k", true), nil); ok {
		t.Fatal("a keyless chunk that changed while read was published")
	}
	if dirty, _, _ := c.state(ch); dirty == "" {
		t.Error("not marked dirty")
	}
	// An unknown token (an earlier run's) is ignored.
	if _, ok := c.Watermark(markRec(t, "other", true), nil); ok {
		t.Error("unknown watermark returned a chunk")
	}
}

// TestCoordinatorReadsAgainWhatTheReadDidNotSee: a transaction the stream
// shows committed before the low watermark, but that the chunk's read saw
// in progress (committed, not yet visible), makes the chunk dirty, whether
// the rows come before or after the watermark is seen; one that commits
// after the low watermark is the window's business (its keys are noted),
// not a reason to read again.
func TestCoordinatorReadsAgainWhatTheReadDidNotSee(t *testing.T) {
	tb := testdecoding.Table{Schema: "public", Name: "t"}
	for _, tc := range []struct {
		name      string
		rowsFirst bool
		commitAt  string // "before" or "after" the low watermark
		dirty     bool
	}{
		{"rows after the watermark, committed before it", false, "before", true},
		{"rows before the watermark, committed before it", true, "before", true},
		{"rows after the watermark, committed after it", false, "after", false},
		{"rows before the watermark, committed after it", true, "after", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCoordinator()
			ch := &chunk{token: "tok", subject: "sub", table: tb, keyCols: []string{"id"}, id: "s1", number: 1, parts: 10}
			c.register(ch)
			c.Committed(40, 0x10) // long before: not in the read's snapshot
			if tc.rowsFirst {
				c.setRows(ch, nil, nil, nil, &visibility{xmax: 100, xip: map[uint32]bool{41: true}})
			}
			if tc.commitAt == "before" {
				c.Committed(41, 0x20)
			}
			c.Watermark(markRec(t, "tok", false), nil)
			if tc.commitAt == "after" {
				c.Committed(41, 0x30)
			}
			if !tc.rowsFirst {
				c.setRows(ch, nil, nil, nil, &visibility{xmax: 100, xip: map[uint32]bool{41: true}})
			}
			_, ok := c.Watermark(markRec(t, "tok", true), []byte("high"))
			dirty, _, _ := c.state(ch)
			if (dirty != "") != tc.dirty || ok == tc.dirty {
				t.Fatalf("dirty %q, published %v; want dirty %v", dirty, ok, tc.dirty)
			}
		})
	}
}

// TestCoordinatorForgetsOldCommits: it remembers the last commitMemory
// commits; when more came after the low watermark, the commits before it
// cannot be checked against the read's snapshot, and the chunk is read
// again rather than risk stale rows.
func TestCoordinatorForgetsOldCommits(t *testing.T) {
	c := NewCoordinator()
	ch := &chunk{token: "tok", subject: "sub", table: testdecoding.Table{Schema: "public", Name: "t"}, keyCols: []string{"id"}, id: "s1", number: 1, parts: 10}
	c.register(ch)
	c.Committed(1, 1)
	c.Watermark(markRec(t, "tok", false), nil)
	for x := range uint32(commitMemory) {
		c.Committed(1000+x, uint64(2+x))
	}
	c.setRows(ch, nil, nil, nil, &visibility{xmax: 900000})
	if dirty, _, _ := c.state(ch); dirty == "" {
		t.Fatal("a chunk whose low watermark is older than the commits remembered was left clean")
	}
}

// TestVisibility: a snapshot does not see its in-progress transactions nor
// any from xmax on, across xid wraparound.
func TestVisibility(t *testing.T) {
	v := &visibility{xmax: 10, xip: map[uint32]bool{7: true}}
	for x, want := range map[uint32]bool{6: false, 7: true, 9: false, 10: true, 11: true, 1 << 31: true} {
		if got := v.invisible(x); got != want {
			t.Errorf("xmax 10 xip [7]: invisible(%d) = %v, want %v", x, got, want)
		}
	}
	w := &visibility{xmax: 3} // wrapped around
	for x, want := range map[uint32]bool{4294967290: false, 2: false, 3: true, 5: true} {
		if got := w.invisible(x); got != want {
			t.Errorf("xmax 3: invisible(%d) = %v, want %v", x, got, want)
		}
	}
}
