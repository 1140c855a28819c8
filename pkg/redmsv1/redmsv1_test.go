package redmsv1

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func TestChangeRoundTrip(t *testing.T) {
	in := &Change{
		Database: "shop", Schema: "public", Table: "orders", Op: Op_OP_UPDATE,
		Columns: []*Column{
			{Name: "id", Type: "integer", Value: "1"},
			{Name: "note", Type: "text", Null: true},
			{Name: "blob", Type: "text", UnchangedToast: true},
		},
		OldKey:         []*Column{{Name: "id", Type: "integer", Value: "0"}},
		Lsn:            "0/16B3748",
		Xid:            4294967295,
		CommitTime:     "2026-11-25T03:00:00.000000000Z",
		KeyColumns:     []string{"id"},
		Leaf:           `public."orders_2026"`,
		TruncateTables: []string{"public.orders", "public.items"},
		NoTupleData:    true,
	}
	b, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := &Change{}
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, out) {
		t.Fatalf("round trip changed the record:\n in: %v\nout: %v", in, out)
	}
}

func TestParkedTableJSONNames(t *testing.T) {
	// CONTRACTS.md names these JSON fields; protojson must use them.
	p := &ParkedTable{Table: "public.t", FirstLsn: "0/1", LastLsn: "0/2", FirstSeq: 1, LastSeq: 2,
		Reason: "bad", Replica: "r1", ParkedAt: "2026-11-25T03:00:00Z"}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	back := &ParkedTable{}
	if err := protojson.Unmarshal(b, back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(p, back) {
		t.Fatalf("protojson round trip: %s", b)
	}
	for _, name := range []string{`"table"`, `"first_lsn"`, `"last_lsn"`, `"first_seq"`, `"last_seq"`, `"reason"`, `"replica"`, `"parked_at"`} {
		if !strings.Contains(string(b), name) {
			t.Errorf("protojson of ParkedTable lacks %s: %s", name, b)
		}
	}
}
