// Package change turns test_decoding records into the changes capture
// publishes. Tables resolves what a table's messages carry (subject, keys,
// declared types, missing values); an Assembler holds one replication
// session's transaction state, gives every change its source position
// (docs/DESIGN.md §2.3), and yields the changes as batch.Chunk values for
// whoever reads the slot to hand on (internal/batch cuts them into
// messages).
package change

import (
	"errors"

	"github.com/redms/redms/pkg/testdecoding"
)

// Metrics receives per-change counts; any field may be nil.
type Metrics struct {
	Excluded     func(table string)
	Transactions func()
}

// TableOfParseError returns the table a record that failed to parse names,
// when the parser got that far.
func TableOfParseError(err error) (testdecoding.Table, bool) {
	var pe *testdecoding.ParseError
	if !errors.As(err, &pe) || pe.Table == "" {
		return testdecoding.Table{}, false
	}
	// pe.Table is printed like test_decoding: parse it the same way.
	rec, perr := testdecoding.Parse([]byte("table " + pe.Table + ": DELETE: (no-tuple-data)"))
	if perr != nil || rec.Kind != testdecoding.KindDelete {
		return testdecoding.Table{}, false
	}
	return rec.Table, true
}
