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

// What Redshift reports at startup besides the backend's own values.
const (
	serverVersion = "8.0.2"
	encoding      = "UNICODE" // client_encoding and server_encoding
	// padbVersion and padbRevision are the cluster version Redshift
	// reports (drivers detect Redshift by them); the emulator names a
	// fixed one.
	padbVersion  = "1.0.77467"
	padbRevision = "77467"
)

// redshiftParam maps a parameter status of the backend to the one a
// Redshift client sees: Redshift reports Postgres 8.0's set
// (server_version, client_encoding, server_encoding, DateStyle, TimeZone,
// integer_datetimes, is_superuser, session_authorization) and nothing
// newer: no standard_conforming_strings, IntervalStyle or
// application_name. ok is false for a parameter Redshift does not report.
func redshiftParam(name, v string) (string, bool) {
	switch name {
	case "server_version":
		return serverVersion, true
	case "client_encoding", "server_encoding":
		return encoding, true
	case "TimeZone":
		if v == "Etc/UTC" {
			v = "UTC"
		}
		return v, true
	case "DateStyle", "integer_datetimes", "is_superuser", "session_authorization":
		return v, true
	}
	return "", false
}

// unknownParams are startup parameters Redshift refuses.
var unknownParams = []string{"standard_conforming_strings"}

// prepared is what the emulator remembers of a client's prepared statement.
type prepared struct {
	lastCopyCount bool
	local         *translate.Stmt // run by the emulator itself, never parsed by the backend
	write         string          // the table the statement writes (translate.Stmt.WriteTable)
	txControl     bool            // BEGIN, COMMIT, …
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
	txPortals     map[string]bool            // portals of BEGIN, COMMIT, …
	// autoTx: the emulator opened a transaction block for a write of an
	// extended batch outside one (its lock lasts until commit); the batch's
	// Sync ends it. batchTx: the batch ran transaction control itself.
	autoTx, batchTx bool
}

// run serves the client until it disconnects or ctx ends.
func (s *session) run(ctx context.Context) error {
	defer s.client.Close()
	params, err := s.startup()
	if err != nil || params == nil {
		return err
	}
	if err := s.connectBackend(ctx, params); err != nil {
		code, msg := "08006", err.Error()
		var re *rserr.Error
		if errors.As(err, &re) {
			code, msg = re.Code, re.Message
		}
		s.be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg})
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
	for _, name := range unknownParams {
		if _, ok := params[name]; ok {
			return rserr.New(rserr.UndefinedObject, "unrecognized configuration parameter %q", name)
		}
	}
	cfg.RuntimeParams["default_transaction_isolation"] = s.srv.backendIsolation(s.db)
	cfg.RuntimeParams["DateStyle"] = "ISO, MDY"
	cfg.RuntimeParams["TimeZone"] = "UTC" // Redshift sessions start in UTC
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
		if v, ok := redshiftParam(name, v); ok {
			s.be.Send(&pgproto3.ParameterStatus{Name: name, Value: v})
		}
	}
	s.be.Send(&pgproto3.ParameterStatus{Name: "padb_version", Value: padbVersion})
	s.be.Send(&pgproto3.ParameterStatus{Name: "padb_revision", Value: padbRevision})
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
		s.batchTx = false
		if s.autoTx {
			if err := s.endAutoTx(); err != nil {
				return err
			}
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

// endAutoTx ends the transaction block the emulator opened for an
// extended batch: COMMIT, or ROLLBACK after an error. A failed COMMIT is
// the client's error.
func (s *session) endAutoTx() error {
	s.autoTx = false
	end := "COMMIT"
	if s.txStatus == 'E' {
		end = "ROLLBACK"
	}
	_, err := s.exec(end)
	var be *backendError
	if errors.As(err, &be) {
		s.sendBackendError(&be.resp)
	} else if err != nil {
		return err
	}
	return s.sync()
}

// openBlock makes sure an extended-protocol statement that needs a
// transaction block runs in one: outside a block it opens one that the
// batch's Sync ends.
func (s *session) openBlock() error {
	if s.txStatus != 'I' || s.autoTx || s.batchTx {
		return nil
	}
	if _, err := s.exec("BEGIN"); err != nil {
		return err
	}
	s.autoTx = true
	return nil
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
	s.log.Info("statement failed", "db", s.db, "session", s.pid, "code", m.Code, "message", m.Message, "detail", m.Detail)
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
	case len(stmts) > 1 && allPassthrough(stmts) && !needsBlock(stmts):
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
	implicit := (len(stmts) > 1 || needsBlock(stmts)) && s.txStatus == 'I' && !hasTxControl(stmts)
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

// needsBlock reports a statement that runs inside a transaction block.
func needsBlock(stmts []translate.Stmt) bool {
	for _, st := range stmts {
		if st.NeedsBlock() {
			return true
		}
	}
	return false
}

// writeLock takes Redshift's write lock on table, inside the open
// transaction block (see translate.WriteLockSQL).
func (s *session) writeLock(table string) error {
	_, err := s.exec(translate.WriteLockSQL(table))
	return err
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
	if st.Kind == translate.Passthrough && st.WriteTable != "" {
		if err := s.writeLock(st.WriteTable); err != nil {
			return err
		}
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
		switch st.Setting {
		case "server_version":
			v = serverVersion
		case "client_encoding", "server_encoding":
			v = encoding
		}
		s.be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte(v)}})
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SHOW")})
	case translate.NoOp:
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(st.Tag)})
	case translate.Copy:
		return s.runCopy(ctx, st.Copy)
	case translate.Lock:
		if _, err := s.exec(st.SQL); err != nil {
			return err
		}
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("LOCK TABLE")})
	case translate.Create:
		if _, err := s.exec(st.SQL); err != nil {
			return err
		}
		for _, sql := range st.Create.CatalogSQL() {
			if _, err := s.exec(sql); err != nil {
				return err
			}
		}
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("CREATE TABLE")})
	case translate.DropColumn:
		if err := s.checkDropColumn(st.Alter); err != nil {
			return err
		}
		if _, err := s.exec(st.SQL); err != nil {
			return err
		}
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("ALTER TABLE")})
	case translate.AddConstraint:
		if _, err := s.exec(st.Constraint.CatalogSQL()); err != nil {
			return err
		}
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("ALTER TABLE")})
	case translate.SetIsolation:
		s.srv.setIsolation(st.Setting, st.Isolation)
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("ALTER DATABASE")})
	case translate.Truncate:
		// extended protocol: the simple path is runStmt
		if s.txStatus == 'T' || s.autoTx {
			if _, err := s.exec("COMMIT"); err != nil {
				return err
			}
			s.autoTx = false
		}
		if _, err := s.exec(st.SQL); err != nil {
			return err
		}
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("TRUNCATE TABLE")})
	case translate.AlterColumnType:
		if s.txStatus != 'I' || s.autoTx {
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

// columnKeys reads a column's Redshift attributes from the emulator's
// catalog: whether it is the DISTKEY, its SORTKEY position, its encoding;
// ok is false when the column does not exist.
func (s *session) columnKeys(a *translate.AlterColumn) (distkey bool, sortkey int, encoding string, ok bool, err error) {
	rows, err := s.exec(fmt.Sprintf(`SELECT coalesce(ca.distkey, false), coalesce(ca.sortkey, 0), coalesce(ca.encoding, '')
FROM pg_attribute a LEFT JOIN rsemu.column_attrs ca ON ca.relid = a.attrelid AND ca.attnum = a.attnum
WHERE a.attrelid = %s::regclass AND a.attname = %s AND NOT a.attisdropped`, translate.QuoteLiteral(a.Table), translate.QuoteLiteral(a.Column)))
	if err != nil || len(rows) == 0 {
		return false, 0, "", false, err
	}
	n, _ := strconv.Atoi(rows[0][1])
	return rows[0][0] == "t", n, rows[0][2], true, nil
}

// checkDropColumn applies Redshift's DROP COLUMN rules: not the DISTKEY,
// not a SORTKEY column, not the table's last column. A column that does
// not exist is left to Postgres' error.
func (s *session) checkDropColumn(a *translate.AlterColumn) error {
	distkey, sortkey, _, ok, err := s.columnKeys(a)
	if err != nil || !ok {
		return err
	}
	switch {
	case distkey:
		return rserr.New(rserr.FeatureNotSupported, "cannot drop distkey column %q", a.Column)
	case sortkey != 0:
		return rserr.New(rserr.FeatureNotSupported, "cannot drop sortkey column %q", a.Column)
	}
	rows, err := s.exec(fmt.Sprintf("SELECT count(*), (SELECT relname FROM pg_class WHERE oid = %[1]s::regclass) FROM pg_attribute WHERE attrelid = %[1]s::regclass AND attnum > 0 AND NOT attisdropped",
		translate.QuoteLiteral(a.Table)))
	if err != nil {
		return err
	}
	if rows[0][0] == "1" {
		return rserr.New(rserr.FeatureNotSupported, "cannot drop the last column of table %q", rows[0][1])
	}
	return nil
}

// alterSQL checks that ALTER COLUMN TYPE changes a VARCHAR column that is
// neither a DISTKEY nor a SORTKEY column nor of an encoding Redshift cannot
// retype, has no PRIMARY KEY, UNIQUE or FOREIGN KEY constraint and no
// DEFAULT, and returns the statement that does it.
func (s *session) alterSQL(a *translate.AlterColumn) (string, error) {
	rows, err := s.exec(fmt.Sprintf(`SELECT format_type(a.atttypid, a.atttypmod),
	(SELECT string_agg(c.conname, ',') FROM pg_constraint c
	 WHERE c.conrelid = a.attrelid AND c.contype = 'c' AND c.conkey = ARRAY[a.attnum] AND c.conname LIKE 'rsemu\_vc%%'),
	EXISTS (SELECT 1 FROM rsemu.column_constraints k WHERE k.relid = a.attrelid AND k.attnum = a.attnum), a.atthasdef
FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attname = %s AND NOT a.attisdropped`,
		translate.QuoteLiteral(a.Table), translate.QuoteLiteral(a.Column)))
	if err != nil {
		return "", err
	}
	if len(rows) == 0 {
		return "", rserr.New("42703", "column %q of relation %q does not exist", a.Column, a.Table)
	}
	distkey, sortkey, encoding, _, err := s.columnKeys(a)
	if err != nil {
		return "", err
	}
	switch {
	case distkey:
		return "", rserr.New(rserr.FeatureNotSupported, "cannot alter type of distkey column %q", a.Column)
	case sortkey != 0:
		return "", rserr.New(rserr.FeatureNotSupported, "cannot alter type of sortkey column %q", a.Column)
	case translate.FixedEncodings[encoding]:
		return "", rserr.New(rserr.FeatureNotSupported, "cannot alter type of column %q with encoding %s", a.Column, encoding)
	case rows[0][2] == "t":
		return "", rserr.New(rserr.FeatureNotSupported, "cannot alter type of column %q with a PRIMARY KEY, UNIQUE or FOREIGN KEY constraint", a.Column)
	case rows[0][3] == "t":
		return "", rserr.New(rserr.FeatureNotSupported, "cannot alter type of column %q with a DEFAULT", a.Column)
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
			case translate.Super, translate.Varbyte:
				e.Code, e.Message = rserr.StringTooLong, "value too long for type "+t.String()
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
