package snapshot

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/redms/redms/pkg/snaprequest"
	"github.com/redms/redms/pkg/testinfra/testenv"
)

// TestStandbyTakesNoRequest: a capture standing by (another one reads the
// slot) leaves snapshot requests to the active one, which alone can splice
// their chunks into the stream.
func TestStandbyTakesNoRequest(t *testing.T) {
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	requests, err := snaprequest.OpenRequests(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	status, err := snaprequest.OpenStatus(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	key := "shop.public.items"
	if _, err := requests.Put(ctx, key, []byte(`{"table":"public.items","reason":"test"}`)); err != nil {
		t.Fatal(err)
	}
	r := NewRunner(Config{DB: "shop", Poll: 20 * time.Millisecond, Active: func() bool { return false }},
		nil, nil, NewCoordinator(), func() uint64 { return 0 }, requests, status, slog.New(slog.DiscardHandler), Metrics{})
	runCtx, stop := context.WithTimeout(ctx, 500*time.Millisecond)
	defer stop()
	if err := r.Run(runCtx); err != nil {
		t.Fatal(err)
	}
	if _, err := requests.Get(ctx, key); err != nil {
		t.Fatalf("a standby took the snapshot request of public.items: %v", err)
	}
	if keys, _ := status.ListKeys(ctx); keys != nil {
		for k := range keys.Keys() {
			t.Errorf("a standby wrote snapshot status %s", k)
		}
	}
}
