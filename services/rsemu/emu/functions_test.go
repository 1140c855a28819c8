package emu_test

import (
	"testing"
)

// TestFunctions: Redshift functions Postgres lacks, as Redshift's
// documentation gives them, and what Redshift refuses.
func TestFunctions(t *testing.T) {
	e := startEnv(t)
	t.Run("STRTOL", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		wantRows(t, c, "15|2882343476|1234567|342391|53|0", "SELECT STRTOL('0xf', 16), STRTOL('abcd1234', 16), STRTOL('1234567', 10), STRTOL('1234567', 8), STRTOL('110101', 2), STRTOL('', 2)")
		wantRows(t, c, "-255|255|4294967295|9223372036854775807|-9223372036854775808", "SELECT strtol('  -ff', 16), STRTOL('+FF', 16), STRTOL(SUBSTRING(MD5('x'), 1, 0) || 'ffffffff', 16), STRTOL('7fffffffffffffff', 16), STRTOL('-9223372036854775808', 10)")
		wantRows(t, c, "12|NULL", "SELECT STRTOL('12z', 10), COALESCE(CAST(STRTOL(NULL, 10) AS VARCHAR), 'NULL')")
		wantErr(t, c, "22023", "base", "SELECT STRTOL('1', 1)")
		wantErr(t, c, "22023", "base", "SELECT STRTOL('1', 37)")
		wantErr(t, c, "22003", "out of range", "SELECT STRTOL('8000000000000000', 16)")
		wantErr(t, c, "22003", "out of range", "SELECT STRTOL('-9223372036854775809', 10)")
	})
	t.Run("FROM_VARBYTE", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (b VARBYTE(8))")
		mustExec(t, c, "INSERT INTO t VALUES (from_hex('6162'))")
		wantRows(t, c, "6162|0110000101100010|ab|ab", "SELECT FROM_VARBYTE(b, 'hex'), FROM_VARBYTE(b, 'binary'), FROM_VARBYTE(b, 'utf8'), from_varbyte(b, 'UTF-8') FROM t")
		wantErr(t, c, "22023", "format", "SELECT FROM_VARBYTE(b, 'base64') FROM t")
	})
}
