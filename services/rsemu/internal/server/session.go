package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/redms/redms/services/rsemu/internal/rserr"
	"github.com/redms/redms/services/rsemu/internal/translate"
)

// serverVersion is what Redshift reports.
const serverVersion = "8.0.2"

// prepared is what the emulator remembers of a client's prepared statement.
type prepared struct {
	lastCopyCount bool
	local         *translate.Stmt // run by the emulator itself, never parsed by the backend
}

// session is one client connection and its backend connection.
type session struct {
	srv      *Server
	log      *slog.Logger
	client   net.Conn
	be       *pgproto3.Backend
	pg       net.Conn
	fe       *pgproto3.Frontend
	db       string
	pid      uint32
	txStatus byte
	opt      translate.Options

	lastCopyCount int64
	stmts         map[string]prepared
	portals       map[string]*translate.Stmt // portals of local statements
	skipToSync    bool                       // an error ended the extended batch
	pending       bool                       // extended-protocol messages sent since the last Sync
}

// run serves the client until it disconnects or ctx ends.
func (s *session) run(ctx context.Context) error {
	defer s.client.Close()
	params, err := s.startup()
	if err != nil || params == nil {
		return err
	}
	if err := s.connectBackend(ctx, params); err != nil {
		s.be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "08006", Message: err.Error()})
		_ = s.be.Flush()
		return err
	}
	defer s.srv.untrack(s.pg)
	defer s.pg.Close()
	for {
		msg, err := s.be.Receive()
		if err != nil {
			return nil // client went away
		}
		if err := s.handle(ctx, msg); err != nil {
			if errors.Is(err, errTerminate) {
				return nil
			}
			return err
		}
	}
}

var errTerminate = errors.New("client terminated")

// startup answers SSL requests with 'N', handles cancel requests and
// returns the startup parameters (nil after a cancel request).
func (s *session) startup() (map[string]string, error) {
	for {
		msg, err := s.be.ReceiveStartupMessage()
		if err != nil {
			return nil, fmt.Errorf("receive startup message: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			if _, err := s.client.Write([]byte{'N'}); err != nil {
				return nil, fmt.Errorf("refuse ssl: %w", err)
			}
		case *pgproto3.CancelRequest:
			s.srv.cancel(m.ProcessID, m.SecretKey)
			return nil, nil
		case *pgproto3.StartupMessage:
			return m.Parameters, nil
		default:
			return nil, fmt.Errorf("unexpected startup message %T", msg)
		}
	}
}

// connectBackend opens the backend connection for the client's database,
// runs it at SERIALIZABLE, and completes the client's startup.
func (s *session) connectBackend(ctx context.Context, params map[string]string) error {
	cfg, err := pgconn.ParseConfig(s.srv.cfg.PostgresURL)
	if err != nil {
		return fmt.Errorf("parse postgres url: %w", err)
	}
	if db := params["database"]; db != "" {
		cfg.Database = db
	}
	s.db = cfg.Database
	cfg.RuntimeParams["default_transaction_isolation"] = "serializable"
	cfg.RuntimeParams["DateStyle"] = "ISO, MDY"
	if app := params["application_name"]; app != "" {
		cfg.RuntimeParams["application_name"] = app
	}
	if err := s.srv.prepareDatabase(ctx, s.db); err != nil {
		return err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	hc, err := conn.Hijack()
	if err != nil {
		conn.Close(ctx)
		return fmt.Errorf("hijack postgres connection: %w", err)
	}
	s.pg, s.fe, s.txStatus = hc.Conn, hc.Frontend, hc.TxStatus
	if !s.srv.track(s.pg) {
		s.pg.Close()
		return errors.New("emulator is shutting down")
	}
	secret := s.srv.register(s, hc.PID, hc.SecretKey)
	s.be.Send(&pgproto3.AuthenticationOk{})
	for name, v := range hc.ParameterStatuses {
		if name == "server_version" {
			v = serverVersion
		}
		s.be.Send(&pgproto3.ParameterStatus{Name: name, Value: v})
	}
	s.be.Send(&pgproto3.BackendKeyData{ProcessID: s.pid, SecretKey: secret})
	s.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	return s.be.Flush()
}

// handle processes one client message.
func (s *session) handle(ctx context.Context, msg pgproto3.FrontendMessage) error {
	switch m := msg.(type) {
	case *pgproto3.Query:
		return s.handleQuery(ctx, m.String)
	case *pgproto3.Terminate:
		return errTerminate
	case *pgproto3.Sync:
		s.skipToSync = false
		s.pending = true
		if err := s.sync(); err != nil {
			return err
		}
		s.be.Send(&pgproto3.ReadyForQuery{TxStatus: s.txStatus})
		return s.be.Flush()
	case *pgproto3.Flush:
		return s.be.Flush()
	}
	if s.skipToSync {
		return nil
	}
	var err error
	switch m := msg.(type) {
	case *pgproto3.Parse:
		err = s.handleParse(ctx, m)
	case *pgproto3.Bind:
		err = s.handleBind(m)
	case *pgproto3.Describe:
		err = s.handleDescribe(m)
	case *pgproto3.Execute:
		err = s.handleExecute(ctx, m)
	case *pgproto3.Close:
		err = s.handleClose(m)
	case *pgproto3.CopyData, *pgproto3.CopyDone, *pgproto3.CopyFail:
		return nil
	default:
		return fmt.Errorf("unexpected message %T", msg)
	}
	var re *rserr.Error
	var be *backendError
	switch {
	case errors.As(err, &re):
		s.sendError(re)
		s.skipToSync = true
		if s.txStatus == 'E' {
			return nil
		}
		return s.poison()
	case errors.As(err, &be):
		s.sendBackendError(&be.resp)
		s.skipToSync = true
		return nil
	case err != nil && !isConnError(err):
		s.log.Error("statement failed in the emulator", "err", err)
		s.sendError(&rserr.Error{Code: rserr.InternalError, Message: err.Error()})
		s.skipToSync = true
		if s.txStatus == 'E' {
			return nil
		}
		return s.poison()
	}
	return err
}

// newSuffix makes constraint names unique: 8 random hex digits.
func newSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// isConnError reports an error of the client or backend connection: the
// session cannot go on.
func isConnError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// sendError sends an emulator error to the client.
func (s *session) sendError(e *rserr.Error) {
	s.log.Info("statement rejected", "db", s.db, "session", s.pid, "code", e.Code, "message", e.Message)
	s.be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: e.Code, Message: e.Message, Detail: e.Detail})
}

// sendBackendError relays a backend error, reworded as Redshift's.
func (s *session) sendBackendError(e *pgproto3.ErrorResponse) {
	m := *e
	redshiftError(&m)
	s.log.Info("statement failed", "db", s.db, "session", s.pid, "code", m.Code, "message", m.Message)
	s.be.Send(&m)
}

// handleQuery runs a simple-protocol query. Like Postgres and Redshift it
// parses (here: translates) every statement first, so an error anywhere
// runs nothing; several statements run in one implicit transaction.
func (s *session) handleQuery(ctx context.Context, sql string) error {
	parts, err := translate.Split(sql)
	var stmts []translate.Stmt
	if err == nil {
		opt := s.opt
		for _, toks := range parts {
			opt.Suffix = newSuffix()
			st, terr := translate.Translate(toks, opt)
			s.log.Debug("translated", "db", s.db, "session", s.pid, "kind", int(st.Kind), "sql", st.SQL)
			if terr != nil {
				err = terr
				break
			}
			if st.Kind == translate.SetCaseSensitive {
				opt.CaseSensitive = st.Value
			}
			stmts = append(stmts, st)
		}
	}
	if err != nil {
		return s.queryFailed(err, false)
	}
	switch {
	case len(stmts) == 0:
		s.be.Send(&pgproto3.EmptyQueryResponse{})
		return s.finishQuery(false, false)
	case len(stmts) > 1 && allPassthrough(stmts):
		// Postgres gives the multi-statement semantics itself.
		sqls := make([]string, len(stmts))
		for i, st := range stmts {
			if err := s.prepare(st); err != nil {
				return s.queryFailed(err, false)
			}
			sqls[i] = st.SQL
		}
		if err := s.sync(); err != nil {
			return err
		}
		failed, err := s.simpleQuery(strings.Join(sqls, ";\n"))
		if err != nil {
			return err
		}
		return s.finishQuery(false, failed)
	}
	implicit := len(stmts) > 1 && s.txStatus == 'I' && !hasTxControl(stmts)
	if implicit {
		if _, err := s.exec("BEGIN"); err != nil {
			return err
		}
	}
	for _, st := range stmts {
		if err := s.runStmt(ctx, st, true, implicit); err != nil {
			return s.queryFailed(err, implicit)
		}
	}
	return s.finishQuery(implicit, false)
}

// queryFailed reports err of a simple query to the client, aborts the
// backend's transaction as Redshift's would be, and ends the query.
func (s *session) queryFailed(err error, implicit bool) error {
	var re *rserr.Error
	var be *backendError
	switch {
	case errors.As(err, &be):
		s.sendBackendError(&be.resp)
		return s.finishQuery(implicit, true)
	case errors.Is(err, errAlreadySent):
		return s.finishQuery(implicit, true)
	case isConnError(err):
		return err
	case errors.As(err, &re):
		s.sendError(re)
	default:
		s.log.Error("statement failed in the emulator", "err", err)
		s.sendError(&rserr.Error{Code: rserr.InternalError, Message: err.Error()})
	}
	if s.txStatus == 'T' || implicit {
		if perr := s.poison(); perr != nil {
			return perr
		}
	}
	return s.finishQuery(implicit, true)
}

func allPassthrough(stmts []translate.Stmt) bool {
	for _, st := range stmts {
		if st.Kind != translate.Passthrough || st.LastCopyCount {
			return false
		}
	}
	return true
}

// hasTxControl reports a statement that begins or ends a transaction.
func hasTxControl(stmts []translate.Stmt) bool {
	for _, st := range stmts {
		first, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(st.SQL)), " ")
		switch first {
		case "begin", "start", "commit", "end", "rollback", "abort":
			return true
		}
	}
	return false
}

// finishQuery ends a simple query: it syncs the backend, ends an implicit
// transaction, and tells the client it is ready.
func (s *session) finishQuery(implicit, failed bool) error {
	if err := s.sync(); err != nil {
		return err
	}
	if implicit {
		end := "COMMIT"
		if failed {
			end = "ROLLBACK"
		}
		if _, err := s.exec(end); err != nil {
			var be *backendError
			if !errors.As(err, &be) {
				return err
			}
			s.sendBackendError(&be.resp)
		}
		if err := s.sync(); err != nil {
			return err
		}
	}
	s.be.Send(&pgproto3.ReadyForQuery{TxStatus: s.txStatus})
	return s.be.Flush()
}

// runStmt runs one translated statement in the simple protocol, sending
// its results to the client. Errors are *rserr.Error (emulator's own),
// *backendError (Postgres'), or fatal.
func (s *session) runStmt(ctx context.Context, st translate.Stmt, simple, implicit bool) error {
	if err := s.prepare(st); err != nil {
		return err
	}
	switch st.Kind {
	case translate.Passthrough:
		if st.SQL == "" {
			s.be.Send(&pgproto3.EmptyQueryResponse{})
			return nil
		}
		if err := s.sync(); err != nil {
			return err
		}
		failed, err := s.simpleQuery(st.SQL)
		if err != nil {
			return err
		}
		if failed {
			return errAlreadySent
		}
		return nil
	case translate.Truncate:
		if s.txStatus == 'T' {
			if _, err := s.exec("COMMIT"); err != nil {
				return err
			}
		}
		if err := s.sync(); err != nil {
			return err
		}
		failed, err := s.simpleQuery(st.SQL)
		if err != nil {
			return err
		}
		if failed {
			return errAlreadySent
		}
		return nil
	case translate.AlterColumnType:
		if s.txStatus != 'I' || implicit {
			return rserr.New(rserr.ActiveSQLTransaction, "ALTER TABLE ALTER COLUMN cannot run inside a transaction block")
		}
		sql, err := s.alterSQL(st.Alter)
		if err != nil {
			return err
		}
		if err := s.sync(); err != nil {
			return err
		}
		failed, err := s.simpleQuery(sql)
		if err != nil {
			return err
		}
		if failed {
			return errAlreadySent
		}
		return nil
	}
	return s.runLocal(ctx, st, simple)
}

// errAlreadySent means the backend's error has been relayed to the client.
var errAlreadySent = errors.New("error already sent")

// runLocal runs the statements the emulator answers itself.
func (s *session) runLocal(ctx context.Context, st translate.Stmt, describe bool) error {
	switch st.Kind {
	case translate.SetCaseSensitive:
		s.opt.CaseSensitive = st.Value
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SET")})
	case translate.Show:
		if describe {
			s.be.Send(showDescription(st.Setting))
		}
		v := "off"
		if s.opt.CaseSensitive {
			v = "on"
		}
		if st.Setting == "server_version" {
			v = serverVersion
		}
		s.be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte(v)}})
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SHOW")})
	case translate.NoOp:
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(st.Tag)})
	case translate.Copy:
		return s.runCopy(ctx, st.Copy)
	case translate.Truncate:
		// extended protocol: the simple path is runStmt
		if s.txStatus == 'T' {
			if _, err := s.exec("COMMIT"); err != nil {
				return err
			}
		}
		if _, err := s.exec(st.SQL); err != nil {
			return err
		}
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("TRUNCATE TABLE")})
	case translate.AlterColumnType:
		if s.txStatus != 'I' {
			return rserr.New(rserr.ActiveSQLTransaction, "ALTER TABLE ALTER COLUMN cannot run inside a transaction block")
		}
		sql, err := s.alterSQL(st.Alter)
		if err != nil {
			return err
		}
		if _, err := s.exec(sql); err != nil {
			return err
		}
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("ALTER TABLE")})
	}
	return nil
}

func showDescription(name string) *pgproto3.RowDescription {
	return &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{
		Name: []byte(name), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1,
	}}}
}

// prepare publishes the session's last COPY count when st reads it.
func (s *session) prepare(st translate.Stmt) error {
	if st.LastCopyCount {
		return s.publishLastCopyCount()
	}
	return nil
}

func (s *session) publishLastCopyCount() error {
	_, err := s.exec("SELECT set_config('rsemu.last_copy_count', '" + strconv.FormatInt(s.lastCopyCount, 10) + "', false)")
	var be *backendError
	if errors.As(err, &be) {
		return nil // the transaction is aborted; the statement will fail the same way
	}
	return err
}

// alterSQL checks that ALTER COLUMN TYPE changes a VARCHAR column and
// returns the statement that does it.
func (s *session) alterSQL(a *translate.AlterColumn) (string, error) {
	rows, err := s.exec(fmt.Sprintf(`SELECT format_type(a.atttypid, a.atttypmod),
	(SELECT string_agg(c.conname, ',') FROM pg_constraint c
	 WHERE c.conrelid = a.attrelid AND c.contype = 'c' AND c.conkey = ARRAY[a.attnum] AND c.conname LIKE 'rsemu\_vc%%')
FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attname = %s AND NOT a.attisdropped`,
		translate.QuoteLiteral(a.Table), translate.QuoteLiteral(a.Column)))
	if err != nil {
		return "", err
	}
	if len(rows) == 0 {
		return "", rserr.New("42703", "column %q of relation %q does not exist", a.Column, a.Table)
	}
	cur := columnType(rows[0][0])
	if cur.Class != translate.Varchar {
		return "", rserr.New(rserr.FeatureNotSupported, "target data type %q is not supported", a.NewType.String())
	}
	if cur.Length == 0 || a.NewType.Length < cur.Length {
		// Redshift lets a VARCHAR shrink only down to its longest value.
		longest, err := s.exec(fmt.Sprintf("SELECT coalesce(max(octet_length(%s)), 0) FROM %s", a.ColumnSQL, a.Table))
		if err != nil {
			return "", err
		}
		if n, _ := strconv.Atoi(longest[0][0]); n > a.NewType.Length {
			return "", rserr.New(rserr.FeatureNotSupported, "cannot alter column %q of relation %q, target column size %d should be greater or equal to current maximum column size %d",
				a.Column, a.Table, a.NewType.Length, n)
		}
	}
	var old []string
	if rows[0][1] != "" {
		old = strings.Split(rows[0][1], ",")
	}
	return translate.AlterVarchar(a, old, newSuffix()), nil
}

// redshiftError rewords a Postgres error as Redshift words it.
func redshiftError(e *pgproto3.ErrorResponse) {
	switch {
	case e.Code == "23514":
		if t, ok := translate.ConstraintType(e.ConstraintName); ok {
			switch t.Class {
			case translate.Varchar, translate.Char:
				e.Code, e.Message = rserr.StringTooLong, "value too long for type "+t.String()
			case translate.Numeric:
				e.Code, e.Message = rserr.NumericOutOfRange, "Numeric data overflow (result precision)"
			case translate.Date:
				e.Code, e.Message = rserr.DatetimeOutOfRange, "date out of range"
			case translate.Timestamp, translate.TimestampTZ:
				e.Code, e.Message = rserr.DatetimeOutOfRange, "timestamp out of range"
			}
			e.ConstraintName, e.Detail = "", ""
		}
	case e.Code == rserr.SerializationFailure:
		e.Detail = "Serializable isolation violation on table - " + e.TableName + ", transactions forming the cycle are: (emulated; Postgres said: " + e.Message + ")"
		e.Message = "1023"
	case e.Code == rserr.NumericOutOfRange && strings.HasPrefix(e.Message, "numeric field overflow"):
		e.Message = "Numeric data overflow (result precision)"
	case e.Code == "21000" && strings.Contains(e.Message, "MERGE command cannot affect row a second time"):
		e.Message = "Found multiple matches to update the same tuple."
	}
}
