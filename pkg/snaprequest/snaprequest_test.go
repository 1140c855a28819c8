package snaprequest

import (
	"fmt"
	"testing"
)

// TestReasonsStayBounded: a table whose windows keep requesting (each with
// its own count) keeps the first reason and the latest ones, not all.
func TestReasonsStayBounded(t *testing.T) {
	r := Request{Reason: "first start"}
	for i := range 100 {
		r = merge(r, Request{Reason: fmt.Sprintf("%d changes without a key", i)})
	}
	want := "first start; 97 changes without a key; 98 changes without a key; 99 changes without a key"
	if r.Reason != want {
		t.Fatalf("reason after 101 requests:\n got %q\nwant %q", r.Reason, want)
	}
	if got := merge(Request{Reason: "a; b"}, Request{Reason: "b"}).Reason; got != "a; b" {
		t.Fatalf("a repeated reason: %q", got)
	}
}
