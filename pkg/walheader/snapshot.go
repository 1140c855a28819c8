package walheader

import (
	"errors"
	"fmt"
)

// SnapshotHeader is the header on a message of snapshot records
// (docs/CONTRACTS.md, docs/DESIGN.md §7).
const SnapshotHeader = "Redms-Snapshot"

// Key is one key of a table: a text value per key column in key order, nil
// for SQL NULL.
type Key []*string

// Snapshot is what Redms-Snapshot says: the message is part Part of Parts
// of chunk Chunk of snapshot ID, which replaces the key range (From, To]
// over Columns (a nil bound is unbounded) except the keys in Keep, which
// changed while the chunk was read; Full replaces the whole (keyless)
// table. Filtered chunks hold only the rows an operator's --where
// matched: they are upserted and nothing is deleted.
type Snapshot struct {
	ID       string   `json:"id"`
	Chunk    int      `json:"chunk"`
	Part     int      `json:"part"`
	Parts    int      `json:"parts"`
	Columns  []string `json:"columns"`
	From     Key      `json:"from"`
	To       Key      `json:"to"`
	Keep     []Key    `json:"keep,omitempty"`
	Full     bool     `json:"full,omitempty"`
	Filtered bool     `json:"filtered,omitempty"`
}

// Check reports what is inconsistent in s.
func (s *Snapshot) Check() error {
	switch {
	case s.ID == "":
		return errors.New("no id")
	case s.Chunk < 1 || s.Part < 1 || s.Part > s.Parts:
		return fmt.Errorf("chunk %d part %d/%d: want chunk >= 1 and 1 <= part <= parts", s.Chunk, s.Part, s.Parts)
	case s.Full && (len(s.Columns) > 0 || s.From != nil || s.To != nil || len(s.Keep) > 0):
		return errors.New("a full replace has no key range")
	case !s.Full && len(s.Columns) == 0:
		return errors.New("no key columns")
	}
	for _, b := range append([]Key{s.From, s.To}, s.Keep...) {
		if b != nil && len(b) != len(s.Columns) {
			return fmt.Errorf("a key of %d values over %d key columns", len(b), len(s.Columns))
		}
	}
	return nil
}

// EncodeSnapshot renders s as the header's value.
func EncodeSnapshot(s *Snapshot) string { return encodeJSON(s) }

// DecodeSnapshot parses the header's value and checks it.
func DecodeSnapshot(v string) (*Snapshot, error) {
	s := new(Snapshot)
	if err := decodeJSON(SnapshotHeader, v, s); err != nil {
		return nil, err
	}
	if err := s.Check(); err != nil {
		return nil, fmt.Errorf("%s %q: %w", SnapshotHeader, v, err)
	}
	return s, nil
}
