package server

import (
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// backendError is an ErrorResponse the backing Postgres sent for an
// internal statement.
type backendError struct{ resp pgproto3.ErrorResponse }

func (e *backendError) Error() string {
	return fmt.Sprintf("%s (SQLSTATE %s)", e.resp.Message, e.resp.Code)
}

// internalName names the prepared statement and portal the emulator's own
// statements use on the backend; clients cannot collide with it in practice.
const internalName = "__rsemu_internal"

// poisonSQL fails at parse time: it aborts the backend's transaction when
// the emulator rejected a statement the backend never saw.
const poisonSQL = `SELECT 1 FROM rsemu."statement rejected by the Redshift emulator"`

// receive reads one backend message, relaying notices to the client.
func (s *session) receive() (pgproto3.BackendMessage, error) {
	for {
		msg, err := s.fe.Receive()
		if err != nil {
			return nil, fmt.Errorf("receive from postgres: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.NoticeResponse:
			s.be.Send(m)
			continue
		case *pgproto3.ParameterStatus:
			if v, ok := redshiftParam(m.Name, m.Value); ok {
				s.be.Send(&pgproto3.ParameterStatus{Name: m.Name, Value: v})
			}
			continue
		case *pgproto3.NotificationResponse:
			s.be.Send(m)
			continue
		case *pgproto3.ReadyForQuery:
			s.txStatus = m.TxStatus
		}
		return msg, nil
	}
}

// closeInternal queues Closes of the internal statement and portal, which
// an earlier failed batch may have left behind (closing what does not
// exist is no error): callers expect four CloseCompletes, these two and
// their own two.
func (s *session) closeInternal() {
	s.fe.Send(&pgproto3.Close{ObjectType: 'P', Name: internalName})
	s.fe.Send(&pgproto3.Close{ObjectType: 'S', Name: internalName})
}

// exec runs sql on the backend with the extended protocol, inside whatever
// batch is open (no Sync), and returns its rows as text. A backend error
// leaves the backend discarding messages until the next Sync.
func (s *session) exec(sql string) ([][]string, error) {
	s.pending = true
	s.closeInternal()
	closes := 0
	s.fe.Send(&pgproto3.Parse{Name: internalName, Query: sql})
	s.fe.Send(&pgproto3.Bind{DestinationPortal: internalName, PreparedStatement: internalName})
	s.fe.Send(&pgproto3.Execute{Portal: internalName})
	s.fe.Send(&pgproto3.Close{ObjectType: 'P', Name: internalName})
	s.fe.Send(&pgproto3.Close{ObjectType: 'S', Name: internalName})
	s.fe.Send(&pgproto3.Flush{})
	if err := s.fe.Flush(); err != nil {
		return nil, fmt.Errorf("send to postgres: %w", err)
	}
	var rows [][]string
	for closes < 4 {
		msg, err := s.receive()
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			row := make([]string, len(m.Values))
			for i, v := range m.Values {
				row[i] = string(v)
			}
			rows = append(rows, row)
		case *pgproto3.ErrorResponse:
			return nil, &backendError{resp: *m}
		case *pgproto3.CloseComplete:
			closes++
		}
	}
	return rows, nil
}

// copyIn runs "COPY … FROM STDIN" (sql) feeding it r, inside the open
// batch.
func (s *session) copyIn(sql string, r io.Reader) error {
	s.pending = true
	s.closeInternal()
	closes := 0
	s.fe.Send(&pgproto3.Parse{Name: internalName, Query: sql})
	s.fe.Send(&pgproto3.Bind{DestinationPortal: internalName, PreparedStatement: internalName})
	s.fe.Send(&pgproto3.Execute{Portal: internalName})
	s.fe.Send(&pgproto3.Flush{})
	if err := s.fe.Flush(); err != nil {
		return fmt.Errorf("send to postgres: %w", err)
	}
	for {
		msg, err := s.receive()
		if err != nil {
			return err
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			return &backendError{resp: *e}
		}
		if _, ok := msg.(*pgproto3.CloseComplete); ok {
			closes++
		}
		if _, ok := msg.(*pgproto3.CopyInResponse); ok {
			break
		}
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			s.fe.Send(&pgproto3.CopyData{Data: buf[:n]})
			if ferr := s.fe.Flush(); ferr != nil {
				return fmt.Errorf("send copy data to postgres: %w", ferr)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.fe.Send(&pgproto3.CopyFail{Message: err.Error()})
			break
		}
	}
	s.fe.Send(&pgproto3.CopyDone{})
	s.fe.Send(&pgproto3.Close{ObjectType: 'P', Name: internalName})
	s.fe.Send(&pgproto3.Close{ObjectType: 'S', Name: internalName})
	s.fe.Send(&pgproto3.Flush{})
	if err := s.fe.Flush(); err != nil {
		return fmt.Errorf("send to postgres: %w", err)
	}
	for closes < 4 {
		msg, err := s.receive()
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			return &backendError{resp: *m}
		case *pgproto3.CloseComplete:
			closes++
		}
	}
	return nil
}

// sync ends the backend's extended-protocol batch and waits for it to be
// ready; it updates the transaction status.
func (s *session) sync() error {
	if !s.pending {
		return nil
	}
	s.pending = false
	s.fe.Send(&pgproto3.Sync{})
	if err := s.fe.Flush(); err != nil {
		return fmt.Errorf("send to postgres: %w", err)
	}
	for {
		msg, err := s.receive()
		if err != nil {
			return err
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return nil
		}
	}
}

// poison makes the backend fail the open batch, so that its transaction
// aborts as Redshift's would after an error the emulator raised itself.
func (s *session) poison() error {
	s.pending = true
	s.fe.Send(&pgproto3.Parse{Name: internalName + "_poison", Query: poisonSQL})
	s.fe.Send(&pgproto3.Flush{})
	if err := s.fe.Flush(); err != nil {
		return fmt.Errorf("send to postgres: %w", err)
	}
	for {
		msg, err := s.receive()
		if err != nil {
			return err
		}
		switch msg.(type) {
		case *pgproto3.ErrorResponse:
			return nil
		case *pgproto3.ParseComplete:
			return errors.New("poison statement unexpectedly parsed")
		}
	}
}

// simpleQuery runs sql with the simple protocol and relays its results to
// the client (everything but ReadyForQuery). It reports whether the
// backend raised an error.
func (s *session) simpleQuery(sql string) (failed bool, err error) {
	s.fe.Send(&pgproto3.Query{String: sql})
	if err := s.fe.Flush(); err != nil {
		return false, fmt.Errorf("send to postgres: %w", err)
	}
	for {
		msg, err := s.receive()
		if err != nil {
			return failed, err
		}
		switch m := msg.(type) {
		case *pgproto3.ReadyForQuery:
			return failed, nil
		case *pgproto3.ErrorResponse:
			failed = true
			s.sendBackendError(m)
		case *pgproto3.CopyInResponse:
			s.fe.Send(&pgproto3.CopyFail{Message: "COPY FROM STDIN is not supported by Redshift"})
			if err := s.fe.Flush(); err != nil {
				return failed, fmt.Errorf("send to postgres: %w", err)
			}
		case *pgproto3.CopyOutResponse, *pgproto3.CopyData, *pgproto3.CopyDone:
			// COPY TO is rejected before it reaches the backend.
		default:
			s.be.Send(m)
		}
	}
}
