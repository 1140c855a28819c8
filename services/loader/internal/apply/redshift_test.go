package apply

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redms/redms/pkg/testenv"
	"github.com/redms/redms/services/loader/internal/warehouse"
	"github.com/redms/redms/services/rsemu/emu"
)

// TestApplyRedshift runs the scenarios through the Redshift emulator
// (services/rsemu): Redshift SQL, COPY from the S3 manifest, and Redshift's
// refusals.
func TestApplyRedshift(t *testing.T) {
	pg := testenv.StartPostgres(t)
	s3srv := testenv.StartS3(t)
	s3srv.CreateBucket(t, "stage")
	pool, read := startRedshift(t, pg, s3srv, "wh")
	runScenarios(t, newEnv(t, warehouse.Redshift, pool, read, s3srv))
}

// startRedshift puts the emulator in front of a new database db of pg and
// returns a pool to the emulator and one to the backing database.
func startRedshift(t *testing.T, pg *testenv.Postgres, s3srv *testenv.S3, db string) (*pgxpool.Pool, *pgxpool.Pool) {
	backing := pg.CreateDatabase(t, db)
	srv, err := emu.Start(context.Background(), emu.Config{
		Listen: "127.0.0.1:0", PostgresURL: pg.URL("postgres"),
		S3Endpoint: s3srv.Endpoint(), S3Region: s3srv.Region(),
		S3AccessKeyID: s3srv.AccessKeyID(), S3SecretAccessKey: s3srv.SecretAccessKey(),
	})
	if err != nil {
		t.Fatalf("start redshift emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close redshift emulator: %v", err)
		}
	})
	pool := openPool(t, "postgres://postgres@"+srv.Addr()+"/"+db+"?sslmode=disable")
	return pool, openPool(t, backing)
}
