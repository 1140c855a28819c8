package slotrecord

import (
	"context"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

// TestSpills: bases survive a new process (LoadSpills of the same bucket)
// and only the newest SpillsKept are kept.
func TestSpills(t *testing.T) {
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadSpills(ctx, kv, "REDMS_WAL", "shop", "redms")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Base(7); ok {
		t.Fatal("a base in an empty bucket")
	}
	if err := s.Spill(ctx, 7, 0x16B3749); err != nil {
		t.Fatal(err)
	}
	for x := range uint32(SpillsKept) {
		if err := s.Spill(ctx, 100+x, 0x2000000+uint64(x)); err != nil {
			t.Fatal(err)
		}
	}
	again, err := LoadSpills(ctx, kv, "REDMS_WAL", "shop", "redms")
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := again.Base(100); !ok || b != 0x2000000 {
		t.Errorf("base of xid 100 read back as %x %v, want 2000000", b, ok)
	}
	if _, ok := again.Base(7); ok {
		t.Errorf("the oldest of %d spills is still kept", SpillsKept+1)
	}
	other, err := LoadSpills(ctx, kv, "REDMS_WAL", "shop", "other")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := other.Base(100); ok {
		t.Error("another slot sees this slot's spills")
	}
}
