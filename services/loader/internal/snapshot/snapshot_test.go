package snapshot

import (
	"context"
	"strings"
	"testing"

	"github.com/redms/redms/pkg/snaprequest"
	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
)

func TestRequestKeepsTheFirstLSN(t *testing.T) {
	_, js := testenv.StartNATS(t).Connect(t)
	s := New(js, "r1", 1)
	ctx := context.Background()
	tab := subject.Table{DB: "shop", Schema: "public", Name: "odd name"}
	kv, err := snaprequest.OpenRequests(ctx, js, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := snaprequest.GetRequest(ctx, kv, subject.KVKey(tab)); err != nil || ok {
		t.Fatalf("Get before a request = %v, %v", ok, err)
	}
	if err := s.Request(ctx, tab, "no key", "0/10", "0/20"); err != nil {
		t.Fatal(err)
	}
	if err := s.Request(ctx, tab, "no key again", "0/30", "0/40"); err != nil {
		t.Fatal(err)
	}
	r, ok, err := snaprequest.GetRequest(ctx, kv, subject.KVKey(tab))
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v", ok, err)
	}
	if r.Table != "public.odd name" || r.FirstLSN != "0/10" || r.LastLSN != "0/40" || r.Reason != "no key; no key again" || r.RequestedBy != "r1" || r.RequestedAt.IsZero() {
		t.Fatalf("request = %+v", r)
	}
}

// TestRequestKeepsAPendingID: redms-verify --repair waits for the snapshot
// of the id it requested; a loader's request of the same table before
// capture took it merges into it (the whole table wins over the ranges)
// and keeps that id. Before, the loader's request replaced it, and the
// repair waited for a snapshot no one would perform.
func TestRequestKeepsAPendingID(t *testing.T) {
	_, js := testenv.StartNATS(t).Connect(t)
	ctx := context.Background()
	tab := subject.Table{DB: "shop", Schema: "public", Name: "items"}
	kv, err := snaprequest.OpenRequests(ctx, js, 0)
	if err != nil {
		t.Fatal(err)
	}
	k := "7"
	if err := snaprequest.Put(ctx, kv, subject.KVKey(tab), snaprequest.Request{Table: "public.items", Reason: "redms-verify --repair: 1 rows differ",
		ID: "verify-1", Ranges: []snaprequest.Range{{To: walheader.Key{&k}}}, RequestedBy: "redms-verify"}); err != nil {
		t.Fatal(err)
	}
	s := New(js, "r1", 1)
	if err := s.Request(ctx, tab, "2 UPDATE/DELETE changes without a key", "0/10", "0/20"); err != nil {
		t.Fatal(err)
	}
	r, ok, err := snaprequest.GetRequest(ctx, kv, subject.KVKey(tab))
	if err != nil || !ok {
		t.Fatalf("GetRequest = %v, %v", ok, err)
	}
	if r.ID != "verify-1" || r.Ranges != nil || !strings.Contains(r.Reason, "redms-verify") || r.FirstLSN != "0/10" {
		t.Fatalf("request after the loader's = %+v, want id verify-1 kept, the whole table, both reasons, first LSN 0/10", r)
	}
}
