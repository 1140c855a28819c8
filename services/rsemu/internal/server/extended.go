package server

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/redms/redms/services/rsemu/internal/rserr"
	"github.com/redms/redms/services/rsemu/internal/translate"
)

// The extended protocol: each client message is translated, forwarded with
// a Flush, and answered as soon as the backend has answered it, so the
// emulator can interleave statements it runs itself. The client's Sync is
// forwarded as is.

func (s *session) handleParse(ctx context.Context, m *pgproto3.Parse) error {
	parts, err := translate.Split(m.Query)
	if err != nil {
		return err
	}
	if len(parts) > 1 {
		return rserr.New(rserr.SyntaxError, "cannot insert multiple commands into a prepared statement")
	}
	st := translate.Stmt{Kind: translate.Passthrough}
	if len(parts) == 1 {
		opt := s.opt
		opt.Suffix = newSuffix()
		if st, err = translate.Translate(parts[0], opt); err != nil {
			return err
		}
	}
	delete(s.stmts, m.Name)
	if st.Kind != translate.Passthrough {
		s.stmts[m.Name] = prepared{local: &st}
		s.be.Send(&pgproto3.ParseComplete{})
		return nil
	}
	if err := s.prepare(st); err != nil {
		return err
	}
	if err := s.lockFor(st.WriteTable); err != nil {
		return err
	}
	s.stmts[m.Name] = prepared{lastCopyCount: st.LastCopyCount, write: st.WriteTable, txControl: hasTxControl([]translate.Stmt{st})}
	return s.forward(&pgproto3.Parse{Name: m.Name, Query: st.SQL, ParameterOIDs: m.ParameterOIDs}, parseDone)
}

// lockFor takes the write lock on table (none when "") in a transaction
// block, before Parse or Bind: both take Postgres' weaker ROW EXCLUSIVE
// lock on the table, and upgrading from it to the write lock could
// deadlock two writers.
func (s *session) lockFor(table string) error {
	if table == "" {
		return nil
	}
	if err := s.openBlock(); err != nil {
		return err
	}
	return s.writeLock(table)
}

func (s *session) handleBind(m *pgproto3.Bind) error {
	delete(s.portals, m.DestinationPortal)
	delete(s.txPortals, m.DestinationPortal)
	p := s.stmts[m.PreparedStatement]
	if p.txControl {
		s.txPortals[m.DestinationPortal] = true
	}
	if err := s.lockFor(p.write); err != nil {
		return err
	}
	if p.local != nil {
		s.portals[m.DestinationPortal] = p.local
		s.be.Send(&pgproto3.BindComplete{})
		return nil
	}
	if p.lastCopyCount {
		if err := s.publishLastCopyCount(); err != nil {
			return err
		}
	}
	return s.forward(m, bindDone)
}

func (s *session) handleDescribe(m *pgproto3.Describe) error {
	var local *translate.Stmt
	if m.ObjectType == 'S' {
		local = s.stmts[m.Name].local
	} else {
		local = s.portals[m.Name]
	}
	if local == nil {
		return s.forward(m, describeDone)
	}
	if m.ObjectType == 'S' {
		s.be.Send(&pgproto3.ParameterDescription{})
	}
	if local.Kind == translate.Show {
		s.be.Send(showDescription(local.Setting))
	} else {
		s.be.Send(&pgproto3.NoData{})
	}
	return nil
}

func (s *session) handleExecute(ctx context.Context, m *pgproto3.Execute) error {
	local := s.portals[m.Portal]
	if local == nil {
		if s.txPortals[m.Portal] {
			s.batchTx = true // BEGIN, COMMIT, …: the client's block
		}
		return s.forward(m, executeDone)
	}
	if local.NeedsBlock() {
		if err := s.openBlock(); err != nil {
			return err
		}
	}
	err := s.runLocal(ctx, *local, false)
	if be, ok := err.(*backendError); ok {
		s.sendBackendError(&be.resp)
		s.skipToSync = true
		return nil
	}
	return err
}

func (s *session) handleClose(m *pgproto3.Close) error {
	var local bool
	if m.ObjectType == 'S' {
		local = s.stmts[m.Name].local != nil
		delete(s.stmts, m.Name)
	} else {
		local = s.portals[m.Name] != nil
		delete(s.portals, m.Name)
		delete(s.txPortals, m.Name)
	}
	if local {
		s.be.Send(&pgproto3.CloseComplete{})
		return nil
	}
	return s.forward(m, closeDone)
}

// forward sends msg to the backend and relays its answers to the client
// until done says the answer is complete. After a backend error the rest
// of the batch is skipped, as the backend does.
func (s *session) forward(msg pgproto3.FrontendMessage, done func(pgproto3.BackendMessage) bool) error {
	s.pending = true
	s.fe.Send(msg)
	s.fe.Send(&pgproto3.Flush{})
	if err := s.fe.Flush(); err != nil {
		return fmt.Errorf("send to postgres: %w", err)
	}
	for {
		resp, err := s.receive()
		if err != nil {
			return err
		}
		switch r := resp.(type) {
		case *pgproto3.ErrorResponse:
			s.sendBackendError(r)
			s.skipToSync = true
			return nil
		case *pgproto3.CopyInResponse:
			s.fe.Send(&pgproto3.CopyFail{Message: "COPY FROM STDIN is not supported by Redshift"})
			s.fe.Send(&pgproto3.Flush{})
			if err := s.fe.Flush(); err != nil {
				return fmt.Errorf("send to postgres: %w", err)
			}
			continue
		default:
			s.be.Send(resp)
		}
		if done(resp) {
			return nil
		}
	}
}

func parseDone(m pgproto3.BackendMessage) bool {
	_, ok := m.(*pgproto3.ParseComplete)
	return ok
}

func bindDone(m pgproto3.BackendMessage) bool {
	_, ok := m.(*pgproto3.BindComplete)
	return ok
}

func closeDone(m pgproto3.BackendMessage) bool {
	_, ok := m.(*pgproto3.CloseComplete)
	return ok
}

func describeDone(m pgproto3.BackendMessage) bool {
	switch m.(type) {
	case *pgproto3.RowDescription, *pgproto3.NoData:
		return true
	}
	return false
}

func executeDone(m pgproto3.BackendMessage) bool {
	switch m.(type) {
	case *pgproto3.CommandComplete, *pgproto3.EmptyQueryResponse, *pgproto3.PortalSuspended:
		return true
	}
	return false
}
