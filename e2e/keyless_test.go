package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

// TestKeylessDuplicates: a REPLICA IDENTITY FULL table without a key may
// hold identical rows; every copy is a row of its own in the warehouse.
func TestKeylessDuplicates(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, "postgres")
	s.startCapture(t, slot)
	s.startLoaders(t, 1)
	s.createMarker(t)
	s.pg.Exec(t, sourceDB, `
CREATE TABLE bag (a int, b text);
ALTER TABLE bag REPLICA IDENTITY FULL;
INSERT INTO bag SELECT g % 20, 'v' || (g % 20) FROM generate_series(1, 100) g;`)
	var n int
	testenv.Eventually(t, 90*time.Second, "the bag in the warehouse", func() bool {
		return s.warehouse.QueryRow(ctx, "SELECT count(*) FROM public.bag").Scan(&n) == nil && n >= 20
	})
	marker := s.writeMarker(t, 1)
	s.waitCaughtUp(t, slot, marker, 90*time.Second)
	if err := s.warehouse.QueryRow(ctx, "SELECT count(*) FROM public.bag").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 100 {
		t.Fatalf("the warehouse holds %d rows of the 100 inserted (20 distinct rows, 5 copies each)", n)
	}
}
