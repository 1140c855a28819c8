package emu_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestProtocol(t *testing.T) {
	e := startEnv(t)
	t.Run("simple and extended", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id integer, name varchar(10))")
		mustExec(t, c, "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
		mustExec(t, c, "INSERT INTO t VALUES ($1, $2)", 3, "c")
		wantRows(t, c, "1|a\n2|b\n3|c", "SELECT id, name FROM t ORDER BY id")
		wantRows(t, c, "2|b", "SELECT id, name FROM t WHERE id = $1", 2)
		// simple protocol explicitly
		rows := queryStrings(t, c, "SELECT count(*) FROM t", pgx.QueryExecModeSimpleProtocol)
		if rowsText(rows) != "3" {
			t.Fatalf("count = %v", rows)
		}
		wantRows(t, c, "8.0.2", "SHOW server_version")
		if v := c.PgConn().ParameterStatus("server_version"); v != "8.0.2" {
			t.Fatalf("server_version = %q", v)
		}
	})
	t.Run("batch", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT, v VARCHAR(3))")
		b := &pgx.Batch{}
		b.Queue("INSERT INTO t VALUES ($1, $2)", 1, "a")
		b.Queue("INSERT INTO t VALUES ($1, $2)", 2, "b")
		b.Queue("SELECT count(*) FROM t")
		br := c.SendBatch(ctxT(t), b)
		for i := 0; i < 2; i++ {
			if _, err := br.Exec(); err != nil {
				t.Fatal(err)
			}
		}
		var n int
		if err := br.QueryRow().Scan(&n); err != nil || n != 2 {
			t.Fatalf("count %d %v", n, err)
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
		// an error in a batch rolls the whole implicit transaction back
		b = &pgx.Batch{}
		b.Queue("INSERT INTO t VALUES ($1, $2)", 3, "c")
		b.Queue("INSERT INTO t VALUES ($1, $2)", 4, "dddd")
		err := c.SendBatch(ctxT(t), b).Close()
		checkErr(t, err, "22001", "character varying(3)", "batch")
		wantRows(t, c, "2", "SELECT count(*) FROM t")
	})
	t.Run("transactions", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id integer)")
		mustExec(t, c, "BEGIN")
		if s := c.PgConn().TxStatus(); s != 'T' {
			t.Fatalf("tx status %c", s)
		}
		mustExec(t, c, "INSERT INTO t VALUES (1)")
		wantErr(t, c, "42601", "syntax error", "CREATE SEQUENCE s")
		if s := c.PgConn().TxStatus(); s != 'E' {
			t.Fatalf("tx status after error %c", s)
		}
		mustExec(t, c, "ROLLBACK")
		if s := c.PgConn().TxStatus(); s != 'I' {
			t.Fatalf("tx status after rollback %c", s)
		}
		wantRows(t, c, "0", "SELECT count(*) FROM t")
	})
	t.Run("cancel request reaches the backend", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		go func() {
			time.Sleep(300 * time.Millisecond)
			_ = c.PgConn().CancelRequest(context.Background())
		}()
		_, err := c.Exec(ctxT(t), "SELECT pg_sleep(30)")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" {
			t.Fatalf("want query_canceled, got %v", err)
		}
		wantRows(t, c, "1", "SELECT 1")
	})
	t.Run("extended protocol for emulated statements", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		var v string
		if err := c.QueryRow(ctxT(t), "SHOW enable_case_sensitive_identifier", pgx.QueryExecModeCacheStatement).Scan(&v); err != nil || v != "off" {
			t.Fatalf("show: %q %v", v, err)
		}
		res := c.PgConn().ExecParams(ctxT(t), "SET enable_case_sensitive_identifier TO on", nil, nil, nil, nil).Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		if err := c.QueryRow(ctxT(t), "SHOW enable_case_sensitive_identifier", pgx.QueryExecModeCacheStatement).Scan(&v); err != nil || v != "on" {
			t.Fatalf("show: %q %v", v, err)
		}
		// an emulator error in the extended protocol ends the batch like a Postgres error
		res = c.PgConn().ExecParams(ctxT(t), "CREATE TABLE t (id uuid)", nil, nil, nil, nil).Read()
		checkErr(t, res.Err, "0A000", "unsupported type", "CREATE TABLE t (id uuid)")
		mustExec(t, c, "BEGIN")
		res = c.PgConn().ExecParams(ctxT(t), "CREATE SEQUENCE s", nil, nil, nil, nil).Read()
		checkErr(t, res.Err, "42601", "SEQUENCE", "CREATE SEQUENCE s")
		if s := c.PgConn().TxStatus(); s != 'E' {
			t.Fatalf("tx status %c, want E", s)
		}
		mustExec(t, c, "ROLLBACK")
		wantRows(t, c, "2", "SELECT $1::int + 1", 1)
	})
}
