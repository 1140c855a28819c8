package emu_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
		wantSimple(t, c, "3", "SELECT count(*) FROM t")
		wantRows(t, c, "8.0.2", "SHOW server_version")
		if v := c.PgConn().ParameterStatus("server_version"); v != "8.0.2" {
			t.Fatalf("server_version = %q", v)
		}
	})
	t.Run("startup parameters are Redshift's", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		pc := c.PgConn()
		for name, want := range map[string]string{
			"server_version": "8.0.2", "client_encoding": "UNICODE", "server_encoding": "UNICODE",
			"DateStyle": "ISO, MDY", "TimeZone": "UTC", "integer_datetimes": "on",
			"standard_conforming_strings": "", "IntervalStyle": "", "application_name": "",
		} {
			if got := pc.ParameterStatus(name); got != want {
				t.Errorf("parameter status %s = %q, want %q", name, got, want)
			}
		}
		if pc.ParameterStatus("padb_version") == "" || pc.ParameterStatus("padb_revision") == "" {
			t.Errorf("padb_version %q, padb_revision %q: want both reported", pc.ParameterStatus("padb_version"), pc.ParameterStatus("padb_revision"))
		}
		// pgx's simple protocol refuses to run a query, as against Redshift
		_, err := c.Query(ctxT(t), "SELECT 1", pgx.QueryExecModeSimpleProtocol)
		if err == nil || !strings.Contains(err.Error(), "standard_conforming_strings=on") {
			t.Fatalf("simple-protocol query: want pgx's standard_conforming_strings refusal, got %v", err)
		}
		wantRows(t, c, "1", "SELECT 1") // the extended protocol works
		wantErr(t, c, "42704", `unrecognized configuration parameter "standard_conforming_strings"`, "SET standard_conforming_strings TO on")
		wantErr(t, c, "42704", `unrecognized configuration parameter "standard_conforming_strings"`, "SHOW standard_conforming_strings")
		wantRows(t, c, "UNICODE", "SHOW client_encoding")
		mustExec(t, c, "SET DateStyle TO 'ISO, DMY'")
		if got := pc.ParameterStatus("DateStyle"); got != "ISO, DMY" {
			t.Fatalf("DateStyle after SET = %q", got)
		}
		mustExec(t, c, "SET client_encoding TO 'UTF8'")
		if got := pc.ParameterStatus("client_encoding"); got != "UNICODE" {
			t.Fatalf("client_encoding after SET = %q, want UNICODE", got)
		}
		// a startup parameter Redshift lacks is fatal
		cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://dev@%s/%s?sslmode=disable", e.emu.Addr(), c.Config().Database))
		if err != nil {
			t.Fatal(err)
		}
		cfg.RuntimeParams["standard_conforming_strings"] = "on"
		_, err = pgx.ConnectConfig(ctxT(t), cfg)
		checkErr(t, err, "42704", `unrecognized configuration parameter "standard_conforming_strings"`, "connect with standard_conforming_strings")
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
