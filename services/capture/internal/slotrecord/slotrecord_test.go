package slotrecord

import (
	"context"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

func TestKey(t *testing.T) {
	if got, want := Key("REDMS_WAL", "my-db.x", "redms"), "slot.REDMS_WAL.my=2Ddb=2Ex.redms"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
}

// TestKeeper writes and reads a slot's record in a real KV bucket.
func TestKeeper(t *testing.T) {
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	k := NewKeeper(kv, "REDMS_WAL", "shop", "redms")
	if _, found, err := k.Last(ctx); err != nil || found {
		t.Fatalf("Last on an empty bucket: found %v, %v", found, err)
	}
	if err := k.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := k.Last(ctx); found {
		t.Fatal("Flush before any session wrote a record")
	}
	if err := k.Started(ctx, 0x16B3748); err != nil {
		t.Fatal(err)
	}
	r, found, err := k.Last(ctx)
	if err != nil || !found || r.ConfirmedLSN != "0/16B3748" || r.Database != "shop" || r.Slot != "redms" || r.Stream != "REDMS_WAL" || r.StartedAt.IsZero() {
		t.Fatalf("after Started: %+v, %v, %v", r, found, err)
	}
	k.Confirmed(0x16B4000)
	k.Confirmed(0x16B3800) // older: ignored
	if err := k.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Another process (a restarted capture) reads what this one wrote.
	again, err := Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	r2, found, err := NewKeeper(again, "REDMS_WAL", "shop", "redms").Last(ctx)
	if err != nil || !found || r2.ConfirmedLSN != "0/16B4000" || r2.ConfirmedAt.Before(r.ConfirmedAt) || !r2.StartedAt.Equal(r.StartedAt) {
		t.Errorf("after Flush: %+v, %v, %v", r2, found, err)
	}
	if _, found, _ := NewKeeper(again, "REDMS_WAL", "shop", "other").Last(ctx); found {
		t.Error("another slot's key found a record")
	}
}
