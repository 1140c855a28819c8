package server

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/redms/redms/services/rsemu/internal/rserr"
	"github.com/redms/redms/services/rsemu/internal/s3copy"
	"github.com/redms/redms/services/rsemu/internal/translate"
)

// runCopy emulates COPY … FROM 's3://…': it parses and checks every row in
// Go, records bad rows in stl_load_errors (outside the client's
// transaction, like Redshift's system table), and loads the good rows with
// COPY FROM STDIN inside the client's transaction.
func (s *session) runCopy(ctx context.Context, c *translate.CopyStmt) error {
	s.lastCopyCount = 0
	if err := s.writeLock(c.Table); err != nil {
		return err
	}
	tableOID, cols, err := s.copyColumns(c)
	if err != nil {
		return err
	}
	files, err := s.srv.objects.Files(ctx, c)
	if err != nil {
		return err
	}
	var b s3copy.Batch
	for _, f := range files {
		s3copy.Parse(c, cols, f, &b)
	}
	if len(b.Errors) > 0 {
		if err := s.srv.recordLoadErrors(ctx, s.db, int(s.pid), tableOID, b.Errors); err != nil {
			return err
		}
	}
	if b.Bad > c.MaxError {
		return &rserr.Error{
			Code:    rserr.InternalError,
			Message: fmt.Sprintf("Load into table '%s' failed.  Check 'stl_load_errors' system table for details.", c.TableName),
			Detail:  loadErrorDetail(b.Errors[0]),
		}
	}
	names := make([]string, len(cols))
	for i, col := range cols {
		names[i] = translate.QuoteIdent(col.Name)
	}
	sql := fmt.Sprintf("COPY %s (%s) FROM STDIN WITH (FORMAT csv)", c.Table, strings.Join(names, ", "))
	if err := s.copyIn(sql, &b.CSV); err != nil {
		return err
	}
	s.lastCopyCount = int64(b.Rows)
	if b.Bad > 0 {
		s.be.Send(&pgproto3.NoticeResponse{Severity: "WARNING", Code: "01000",
			Message: fmt.Sprintf("Load into table '%s' completed, %d record(s) could not be loaded.  Check 'stl_load_errors' system table for details.", c.TableName, b.Bad)})
	}
	s.be.Send(&pgproto3.NoticeResponse{Severity: "INFO", Code: "00000",
		Message: fmt.Sprintf("Load into table '%s' completed, %d record(s) loaded successfully.", c.TableName, b.Rows)})
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("COPY")})
	return nil
}

func loadErrorDetail(e s3copy.LoadError) string {
	return fmt.Sprintf("\n  -----------------------------------------------\n  error:  %s\n  code:      %d\n  context:   %s\n  query:     0\n  location:  %s\n  process:   rsemu\n  -----------------------------------------------",
		e.Reason, e.Code, e.RawValue, e.File)
}

// copyColumns reads the target table's columns (those c names, in c's
// order, or all). Types are named by format_type, whose catalog lookups do
// not depend on the transaction's snapshot.
func (s *session) copyColumns(c *translate.CopyStmt) (uint32, []s3copy.Column, error) {
	rows, err := s.exec(fmt.Sprintf(`SELECT a.attrelid::bigint, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
	coalesce((SELECT k.conname FROM pg_constraint k WHERE k.conrelid = a.attrelid AND k.conkey = ARRAY[a.attnum] AND k.conname LIKE 'rsemu\_vb%%' LIMIT 1), '')
FROM pg_attribute a
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, translate.QuoteLiteral(c.Table)))
	if err != nil {
		return 0, nil, err
	}
	if len(rows) == 0 {
		return 0, nil, rserr.New("42P01", "relation %q has no columns visible to this transaction", c.TableName)
	}
	var oid uint32
	byName := map[string]s3copy.Column{}
	var all []s3copy.Column
	for _, r := range rows {
		o, _ := strconv.ParseUint(r[0], 10, 32)
		oid = uint32(o)
		col := s3copy.Column{Name: r[1], Type: columnType(r[2]), NotNull: r[3] == "t"}
		if t, ok := translate.ConstraintType(r[4]); ok && t.Class == translate.Varbyte {
			col.Type = t
		}
		byName[col.Name] = col
		all = append(all, col)
	}
	if c.Columns == nil {
		return oid, all, nil
	}
	var cols []s3copy.Column
	for _, n := range c.Columns {
		col, ok := byName[n]
		if !ok {
			return 0, nil, rserr.New("42703", "column %q of relation %q does not exist", n, c.TableName)
		}
		cols = append(cols, col)
	}
	return oid, cols, nil
}

var typmodRE = regexp.MustCompile(`^([a-z ]+?)(?:\((\d+)(?:,(\d+))?\))?$`)

// columnType maps a column's format_type text to the Redshift type whose
// rules COPY applies (a VARCHAR(n) stored as varchar(n): n bytes).
func columnType(formatted string) translate.Type {
	g := typmodRE.FindStringSubmatch(formatted)
	if g == nil {
		return translate.Type{}
	}
	n1, _ := strconv.Atoi(g[2])
	n2, _ := strconv.Atoi(g[3])
	switch g[1] {
	case "smallint":
		return translate.Type{Class: translate.SmallInt}
	case "integer":
		return translate.Type{Class: translate.Integer}
	case "bigint":
		return translate.Type{Class: translate.BigInt}
	case "numeric":
		if g[2] == "" {
			return translate.Type{Class: translate.Numeric, Precision: 1000, Scale: 500}
		}
		return translate.Type{Class: translate.Numeric, Precision: n1, Scale: n2}
	case "real":
		return translate.Type{Class: translate.Real}
	case "double precision":
		return translate.Type{Class: translate.Double}
	case "boolean":
		return translate.Type{Class: translate.Boolean}
	case "character", "bpchar":
		return translate.Type{Class: translate.Char, Length: max(n1, 1)}
	case "character varying", "text":
		return translate.Type{Class: translate.Varchar, Length: n1}
	case "date":
		return translate.Type{Class: translate.Date}
	case "timestamp without time zone":
		return translate.Type{Class: translate.Timestamp}
	case "timestamp with time zone":
		return translate.Type{Class: translate.TimestampTZ}
	case "time without time zone":
		return translate.Type{Class: translate.Time}
	case "time with time zone":
		return translate.Type{Class: translate.TimeTZ}
	case "jsonb":
		return translate.Type{Class: translate.Super}
	case "bytea":
		return translate.Type{Class: translate.Varbyte, Length: translate.MaxVarbyte}
	}
	return translate.Type{}
}

// cutBytes cuts ASCII s to n bytes, as Redshift's char(n) system columns
// (stl_load_errors.type is char(10): "timestamptz" shows as "timestampt").
func cutBytes(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// storable makes s valid UTF-8 without NUL bytes, as a Postgres text
// column needs; the invalid bytes become '?'.
func storable(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "?"), "\x00", "?")
}

// recordLoadErrors appends rows to stl_load_errors with the emulator's own
// connection, so they survive the client's rollback.
func (srv *Server) recordLoadErrors(ctx context.Context, db string, session int, tbl uint32, errs []s3copy.LoadError) error {
	p, err := srv.pool(ctx, db)
	if err != nil {
		return err
	}
	var query int64
	if err := p.QueryRow(ctx, "SELECT nextval('rsemu.query_id')").Scan(&query); err != nil {
		return fmt.Errorf("allocate query id: %w", err)
	}
	now := time.Now().UTC()
	rows := make([][]any, len(errs))
	for i, e := range errs {
		rows[i] = []any{int32(100), int32(0), int32(tbl), now, int32(session), int32(query), storable(e.File), int64(e.Line),
			e.Column, cutBytes(e.Type, 10), e.ColLength, int32(e.Position), storable(e.RawLine), storable(e.RawValue), int32(e.Code), storable(e.Reason)}
	}
	_, err = p.CopyFrom(ctx, pgx.Identifier{"rsemu", "stl_load_errors"},
		[]string{"userid", "slice", "tbl", "starttime", "session", "query", "filename", "line_number", "colname", "type",
			"col_length", "position", "raw_line", "raw_field_value", "err_code", "err_reason"}, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("record load errors: %w", err)
	}
	return nil
}
