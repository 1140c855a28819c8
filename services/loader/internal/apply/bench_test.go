package apply

import (
	"fmt"
	"testing"

	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/services/loader/internal/warehouse"
)

// BenchmarkApplyPostgres applies windows of 20000 changes (inserts, updates
// of earlier rows, deletes) into a Postgres warehouse through S3 staging.
func BenchmarkApplyPostgres(b *testing.B) {
	pg := testenv.StartPostgres(b)
	s3srv := testenv.StartS3(b)
	s3srv.CreateBucket(b, "stage")
	pool := testenv.Pool(b, pg.CreateDatabase(b, "wh"))
	e := newEnv(b, warehouse.Postgres, pool, pool, s3srv)
	const n = 20000
	next := 0
	b.ResetTimer()
	for range b.N {
		recs := make([]rec, 0, n)
		for i := range n {
			switch i % 10 {
			case 8:
				recs = append(recs, pk(fmt.Sprintf(`table public.bench: UPDATE: id[integer]:%d note[text]:'updated %d' amount[numeric(12,2)]:%d.25 body[text]:unchanged-toast-datum`, next-5, i, i)))
			case 9:
				recs = append(recs, pk(fmt.Sprintf(`table public.bench: DELETE: id[integer]:%d`, next-3)))
			default:
				next++
				recs = append(recs, pk(fmt.Sprintf(`table public.bench: INSERT: id[integer]:%d note[text]:'row %d with some text, "quotes" and a comma' amount[numeric(12,2)]:%d.50 body[text]:'%s'`, next, next, next, "x")))
			}
		}
		w := e.window("bench", recs...)
		res := e.apply(w)
		if !res.Applied {
			b.Fatalf("not applied: %+v", res)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "changes/s")
}
