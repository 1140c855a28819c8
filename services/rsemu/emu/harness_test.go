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

	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/services/rsemu/emu"
)

// env is one backing Postgres, one S3 server and one emulator in front.
type env struct {
	pg  *testenv.Postgres
	s3  *testenv.S3
	emu *emu.Server
}

var dbSeq atomic.Int64

// startEnv starts the environment; opts adjust the emulator's config.
func startEnv(t testing.TB, opts ...func(*emu.Config)) *env {
	t.Helper()
	pg := testenv.StartPostgres(t)
	s3 := testenv.StartS3(t)
	s3.CreateBucket(t, "bucket")
	cfg := emu.Config{
		Listen: "127.0.0.1:0", PostgresURL: pg.URL("postgres"),
		S3Endpoint: s3.Endpoint(), S3Region: s3.Region(),
		S3AccessKeyID: s3.AccessKeyID(), S3SecretAccessKey: s3.SecretAccessKey(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	e, err := emu.Start(context.Background(), cfg)
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

// simpleRows runs sql with the simple query protocol (pgconn's, which
// needs no standard_conforming_strings, unlike pgx's) and returns its rows
// as text, NULL for nulls, as wantRows compares them.
func simpleRows(t *testing.T, c *pgx.Conn, sql string) string {
	t.Helper()
	res, err := c.PgConn().Exec(ctxT(t), sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var rows [][]string
	for _, r := range res {
		for _, vals := range r.Rows {
			row := make([]string, len(vals))
			for i, v := range vals {
				if v == nil {
					row[i] = "NULL"
				} else {
					row[i] = string(v)
				}
			}
			rows = append(rows, row)
		}
	}
	return rowsText(rows)
}

func wantSimple(t *testing.T, c *pgx.Conn, want, sql string) {
	t.Helper()
	if got := simpleRows(t, c, sql); got != want {
		t.Fatalf("%s:\n got: %q\nwant: %q", sql, got, want)
	}
}
