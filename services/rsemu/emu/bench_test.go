package emu_test

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkCopy loads 50 000 rows of gzipped CSV from S3 through the
// emulator per iteration (parse, check, COPY FROM STDIN).
func BenchmarkCopy(b *testing.B) {
	e := startEnv(b)
	c := e.connect(b, e.db(b))
	var csv strings.Builder
	const rows = 50000
	for i := 0; i < rows; i++ {
		fmt.Fprintf(&csv, "%d,\"name %d\",%d.%02d,2024-01-%02d 10:11:12.123456,\"~N\"\n", i, i, i, i%100, i%28+1)
	}
	url := e.put(b, "bench/part-0.csv.gz", csv.String(), true)
	if _, err := c.Exec(ctxT(b), "CREATE TABLE t (id BIGINT, name VARCHAR(64), amount NUMERIC(19,8), at TIMESTAMP, note VARCHAR(10))"); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(csv.Len()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Exec(ctxT(b), "COPY t FROM '"+url+"' IAM_ROLE '"+role+"' GZIP CSV NULL AS '~N' TIMEFORMAT 'auto'"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
