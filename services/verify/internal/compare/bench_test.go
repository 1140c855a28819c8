package compare

import (
	"context"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	rowverify "github.com/redms/redms/pkg/demo/verify"
	"github.com/redms/redms/pkg/testinfra/testenv"
)

// countingConn counts the bytes a client reads from its server.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// countingPool opens a pool whose connections count the bytes they read.
func countingPool(b *testing.B, ctx context.Context, url string, n *atomic.Int64) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	var d net.Dialer
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, n: n}, nil
	}
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	return p
}

// BenchmarkVerify compares a table of REDMS_BENCH_ROWS (default 2,000,000)
// rows without differences twice in the same run: row by row with
// pkg/demo/verify, the reference, and by checksums with Compare.
// rowcompare-ratio is the reference's time over Compare's,
// warehouse-bytes-ratio the bytes Compare read from the warehouse
// connection over the reference's.
func BenchmarkVerify(b *testing.B) {
	rows := 2_000_000
	if s := os.Getenv("REDMS_BENCH_ROWS"); s != "" {
		var err error
		if rows, err = strconv.Atoi(s); err != nil {
			b.Fatalf("REDMS_BENCH_ROWS: %v", err)
		}
	}
	ctx := context.Background()
	pg := testenv.StartPostgres(b)
	pg.CreateDatabase(b, "src")
	pg.CreateDatabase(b, "wh")
	gen := func(typed string) string {
		return "INSERT INTO public.orders SELECT g, 'customer ' || (g % 9973), (g % 100000) / 100.0 + 0.5, " +
			"timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', g % 3 = 0, md5(g::text) FROM generate_series(1, " + strconv.Itoa(rows) + ") g"
	}
	pg.Exec(b, "src", "CREATE TABLE public.orders (id bigint PRIMARY KEY, customer text, amount numeric(12,2), at timestamptz, paid boolean, ref varchar(40)); "+gen("")+"; ANALYZE public.orders")
	pg.Exec(b, "wh", "CREATE TABLE public.orders (id BIGINT, customer VARCHAR(65535), amount NUMERIC(12,2), at TIMESTAMPTZ, paid BOOLEAN, ref VARCHAR(160)); "+gen("")+"; ANALYZE public.orders")
	var srcBytes, whBytes atomic.Int64
	src := countingPool(b, ctx, pg.URL("src"), &srcBytes)
	wh := countingPool(b, ctx, pg.URL("wh"), &whBytes)
	tables := []Name{{"public", "orders"}}

	var rowTime, ourTime time.Duration
	var rowBytes, ourBytes int64
	b.ResetTimer()
	for range b.N {
		whBytes.Store(0)
		start := time.Now()
		ref, err := rowverify.Compare(ctx, src, wh, rowverify.Options{Tables: []rowverify.Table{{Schema: "public", Name: "orders"}}})
		if err != nil {
			b.Fatal(err)
		}
		rowTime += time.Since(start)
		rowBytes += whBytes.Load()
		if !ref.OK() || ref.Tables[0].Rows != rows {
			b.Fatalf("reference compare: %s %v", ref.Summary(), ref.Diffs)
		}

		whBytes.Store(0)
		start = time.Now()
		rep, err := Compare(ctx, src, wh, Options{Tables: tables, ConfirmTimeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		ourTime += time.Since(start)
		ourBytes += whBytes.Load()
		if rep.ExitCode() != 0 || rep.Tables[0].SourceRows != int64(rows) {
			b.Fatalf("compare: %+v", rep.Tables)
		}
	}
	b.ReportMetric(rowTime.Seconds()/ourTime.Seconds(), "rowcompare-ratio")
	b.ReportMetric(float64(ourBytes)/float64(rowBytes), "warehouse-bytes-ratio")
	b.ReportMetric(ourTime.Seconds()/float64(b.N), "verify-s/op")
	b.ReportMetric(rowTime.Seconds()/float64(b.N), "rowcompare-s/op")
}
