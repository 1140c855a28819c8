package park

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

func TestParkAndResume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := testenv.StartNATS(t)
	_, js := n.Connect(t)
	s, err := Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	const consumer = "redms-shop-public-odd=20name"
	if _, ok, err := s.Get(ctx, consumer); err != nil || ok {
		t.Fatalf("Get before park = %v, %v", ok, err)
	}
	if err := s.WaitResumed(ctx, consumer); err != nil {
		t.Fatalf("WaitResumed of a table never parked = %v", err)
	}
	want := Record{Table: "public.odd name", FirstLSN: "0/10", LastLSN: "0/20", FirstSeq: 3, LastSeq: 9,
		Reason: "parse record: bad", Replica: "r1", ParkedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := s.Park(ctx, consumer, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(ctx, consumer)
	if err != nil || !ok || got != want {
		t.Fatalf("Get = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	raw, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := raw.Get(ctx, consumer)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"table":"public.odd name"`, `"first_lsn":"0/10"`, `"last_seq":"9"`, `"parked_at":"2026-01-01T00:00:00Z"`} {
		if !strings.Contains(string(e.Value()), field) {
			t.Errorf("stored %s lacks %s", e.Value(), field)
		}
	}
	if c, err := s.Count(ctx); err != nil || c != 1 {
		t.Fatalf("Count = %d, %v", c, err)
	}

	resumed := make(chan error, 1)
	go func() { resumed <- s.WaitResumed(ctx, consumer) }()
	short, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	defer stop()
	if err := s.WaitResumed(short, consumer); err == nil {
		t.Fatal("WaitResumed returned while the table is parked")
	}
	if ok, err := s.Resume(ctx, consumer); err != nil || !ok {
		t.Fatalf("Resume = %v, %v", ok, err)
	}
	if err := <-resumed; err != nil {
		t.Fatalf("WaitResumed = %v", err)
	}
	if ok, err := s.Resume(ctx, consumer); err != nil || ok {
		t.Fatalf("second Resume = %v, %v; want false", ok, err)
	}
	if c, err := s.Count(ctx); err != nil || c != 0 {
		t.Fatalf("Count after resume = %d, %v", c, err)
	}
}
