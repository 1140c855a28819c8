package emu_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestProtocol(t *testing.T) {
	e := startEnv(t)
	t.Run("simple and extended", func(t *testing.T) {
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
	t.Run("transactions", func(t *testing.T) {
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
}
