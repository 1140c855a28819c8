package warehouse

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestErrorClasses(t *testing.T) {
	wrap := func(code, msg string) error {
		return fmt.Errorf("apply window: %w", &pgconn.PgError{Code: code, Message: msg})
	}
	cases := []struct {
		err                 error
		permanent, conflict bool
	}{
		{wrap("40001", "could not serialize access"), false, true},
		{wrap("40001", "1023"), false, true}, // the emulator's Redshift 1023
		{wrap("XX000", "1023"), false, true}, // Redshift's
		{wrap("XX000", "Load into table 't' failed.  Check 'stl_load_errors' system table for details."), true, false},
		{wrap("XX000", "disk full"), false, false},
		{wrap("22001", "value too long"), true, false},
		{wrap("0A000", "cannot alter type of sortkey column"), true, false},
		{errors.New("connection reset"), false, false},
	}
	for _, c := range cases {
		if got := Permanent(c.err); got != c.permanent {
			t.Errorf("Permanent(%v) = %v", c.err, got)
		}
		if got := SerializationConflict(c.err); got != c.conflict {
			t.Errorf("SerializationConflict(%v) = %v", c.err, got)
		}
	}
}
