package emu_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/redms/redms/pkg/testenv"
	"github.com/redms/redms/services/rsemu/emu"
)

// env is one backing Postgres, one S3 server and one emulator in front.
type env struct {
	pg  *testenv.Postgres
	s3  *testenv.S3
	emu *emu.Server
}

var dbSeq atomic.Int64

func startEnv(t testing.TB) *env {
	t.Helper()
	pg := testenv.StartPostgres(t)
	s3 := testenv.StartS3(t)
	s3.CreateBucket(t, "bucket")
	e, err := emu.Start(context.Background(), emu.Config{
		Listen: "127.0.0.1:0", PostgresURL: pg.URL("postgres"),
		S3Endpoint: s3.Endpoint(), S3Region: s3.Region(),
		S3AccessKeyID: s3.AccessKeyID(), S3SecretAccessKey: s3.SecretAccessKey(),
	})
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("close emulator: %v", err)
		}
	})
	return &env{pg: pg, s3: s3, emu: e}
}

// db creates a fresh database and returns its name.
func (e *env) db(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d", dbSeq.Add(1))
	e.pg.CreateDatabase(t, name)
	return name
}

// connect opens a pgx connection to the emulator for database db.
func (e *env) connect(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://dev@%s/%s?sslmode=disable", e.emu.Addr(), db))
	if err != nil {
		t.Fatalf("connect to emulator: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mustExec runs sql and fails the test on error.
func mustExec(t *testing.T, c *pgx.Conn, sql string, args ...any) pgconn.CommandTag {
	t.Helper()
	tag, err := c.Exec(ctxT(t), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return tag
}

// wantErr runs sql and asserts a Postgres error with code whose message
// contains msg.
func wantErr(t *testing.T, c *pgx.Conn, code, msg, sql string, args ...any) *pgconn.PgError {
	t.Helper()
	_, err := c.Exec(ctxT(t), sql, args...)
	return checkErr(t, err, code, msg, sql)
}

func checkErr(t *testing.T, err error, code, msg, what string) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: want error %s %q, got %v", what, code, msg, err)
	}
	if pe.Code != code || !strings.Contains(pe.Message, msg) {
		t.Fatalf("%s: want error %s containing %q, got %s %q (detail %q)", what, code, msg, pe.Code, pe.Message, pe.Detail)
	}
	return pe
}

// queryStrings runs sql and returns every row's columns as text.
func queryStrings(t *testing.T, c *pgx.Conn, sql string, args ...any) [][]string {
	t.Helper()
	rows, err := c.Query(ctxT(t), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = fmt.Sprint(v)
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func rowsText(rows [][]string) string {
	var parts []string
	for _, r := range rows {
		parts = append(parts, strings.Join(r, "|"))
	}
	return strings.Join(parts, "\n")
}

func wantRows(t *testing.T, c *pgx.Conn, want string, sql string, args ...any) {
	t.Helper()
	if got := rowsText(queryStrings(t, c, sql, args...)); got != want {
		t.Fatalf("%s:\n got: %q\nwant: %q", sql, got, want)
	}
}
