package warehouse

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Permanent reports whether err is the warehouse refusing a statement for
// good (a value, a type, a name or the SQL itself), as opposed to a failure
// worth retrying for as long as it lasts (a connection, a serialization
// conflict, resources, S3 access).
//
// Classes: 22 data exception, 23 integrity violation, 42 syntax error or
// access rule violation, 0A feature not supported. Redshift reports
// everything else as XX000, its serialization conflict (ERROR 1023) and S3
// trouble included; only a COPY load error, which names the stl_load_errors
// table in its message (Redshift gives it no code of its own), is permanent
// among those.
func Permanent(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "42", "0A":
		return true
	}
	return pe.Code == "XX000" && strings.Contains(pe.Message, "stl_load_errors")
}

// SerializationConflict reports a transaction the warehouse aborted because
// a concurrent one conflicted with it: SQLSTATE 40001 (Postgres, and the
// emulator's Redshift error 1023), or Redshift's ERROR 1023 reported as
// XX000. Transient, like every error Permanent refuses.
func SerializationConflict(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Code == "40001" || pe.Code == "XX000" && strings.HasPrefix(pe.Message, "1023")
}

// Detailed is err with the server's DETAIL and HINT in its text, which
// pgconn's PgError.Error() leaves out: "ERROR: 1023 (SQLSTATE 40001)"
// does not say which transaction conflicted, its detail does. errors.As
// still finds the PgError.
func Detailed(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	var extra []string
	if pe.Detail != "" {
		extra = append(extra, "detail: "+pe.Detail)
	}
	if pe.Hint != "" {
		extra = append(extra, "hint: "+pe.Hint)
	}
	if len(extra) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(extra, "; "))
}
