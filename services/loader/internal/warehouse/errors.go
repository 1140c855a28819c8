package warehouse

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// Permanent reports whether err is the warehouse refusing a statement for
// good (a value, a type, a name or the SQL itself), as opposed to a failure
// worth retrying (connection, serialization, resources, S3 access).
//
// Classes: 22 data exception, 23 integrity violation, 42 syntax error or
// access rule violation, 0A feature not supported. Redshift reports COPY load
// errors as XX000, which also covers transient faults, so XX000 is retried
// (and parks after the caller's retries run out).
func Permanent(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "42", "0A":
		return true
	}
	return false
}
