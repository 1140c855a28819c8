// Package walheader names the NATS headers every WAL message carries (see
// docs/CONTRACTS.md) and converts them to and from a typed Meta, so capture
// (which sets them) and loader (which reads them) cannot drift apart.
package walheader

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Header names.
const (
	// MsgID is JetStream's dedup id: <db>:<change LSN>:<ordinal>.
	MsgID = "Nats-Msg-Id"
	// LSN is the change's LSN in Postgres text form X/Y.
	LSN = "Redms-Lsn"
	// Ordinal is the change's 0-based index among changes at the same LSN.
	Ordinal = "Redms-Ordinal"
	// CommitLSN is the LSN of the transaction's commit.
	CommitLSN = "Redms-Commit-Lsn"
	// Xid is the transaction id, decimal.
	Xid = "Redms-Xid"
	// CommitTime is the commit timestamp, RFC 3339 with nanoseconds, UTC.
	CommitTime = "Redms-Commit-Time"
	// Keys is a JSON array of the table's key column names, [] when none.
	Keys = "Redms-Keys"
	// KeySource says where Keys came from (KeySourcePrimaryKey, ...).
	KeySource = "Redms-Key-Source"
	// Leaf is the leaf partition (schema.table, quoted like test_decoding)
	// when the change travels on its partition root's subject.
	Leaf = "Redms-Leaf"
)

// Values of the KeySource header.
const (
	KeySourcePrimaryKey          = "primary-key"
	KeySourceReplicaIdentityFull = "replica-identity-full"
	KeySourceConfig              = "config"
	KeySourceDefault             = "default"
	KeySourceNone                = "none"
)

// TimeLayout formats CommitTime: RFC 3339 with all nine fraction digits.
// Parsing also accepts any RFC 3339 time.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// ErrMissing is wrapped when a required header is absent.
var ErrMissing = errors.New("missing header")

// MsgIDFor is the Nats-Msg-Id of the change at lsn with the given ordinal in
// database db, e.g. "shop:0/16B3748:0".
func MsgIDFor(db string, lsn string, ordinal int) string {
	return db + ":" + lsn + ":" + strconv.Itoa(ordinal)
}

// EncodeKeys renders key column names as a JSON array; nil gives "[]".
func EncodeKeys(keys []string) string {
	if keys == nil {
		keys = []string{}
	}
	b, err := json.Marshal(keys)
	if err != nil {
		// Marshalling a []string cannot fail.
		return "[]"
	}
	return string(b)
}

// DecodeKeys parses a JSON array of key column names. "[]" gives an empty,
// non-nil slice.
func DecodeKeys(s string) ([]string, error) {
	var keys []string
	if err := json.Unmarshal([]byte(s), &keys); err != nil {
		return nil, fmt.Errorf("decode %s %q: %w", Keys, s, err)
	}
	if keys == nil {
		return nil, fmt.Errorf("decode %s %q: not a JSON array", Keys, s)
	}
	return keys, nil
}

// Meta is what the headers of one WAL message say about its change.
type Meta struct {
	LSN        string
	Ordinal    int
	CommitLSN  string
	Xid        uint64
	CommitTime time.Time
	Keys       []string
	KeySource  string
	Leaf       string // empty unless published on a partition root's subject
}

// Header renders m as message headers, including Nats-Msg-Id for database
// db. A zero CommitTime and an empty Leaf are left out.
func (m Meta) Header(db string) nats.Header {
	h := nats.Header{}
	h.Set(MsgID, MsgIDFor(db, m.LSN, m.Ordinal))
	h.Set(LSN, m.LSN)
	h.Set(Ordinal, strconv.Itoa(m.Ordinal))
	h.Set(CommitLSN, m.CommitLSN)
	h.Set(Xid, strconv.FormatUint(m.Xid, 10))
	if !m.CommitTime.IsZero() {
		h.Set(CommitTime, m.CommitTime.UTC().Format(TimeLayout))
	}
	h.Set(Keys, EncodeKeys(m.Keys))
	h.Set(KeySource, m.KeySource)
	if m.Leaf != "" {
		h.Set(Leaf, m.Leaf)
	}
	return h
}

// Parse reads the headers Header writes. LSN is required. Keys is nil when
// its header is absent (the reader falls back to configuration) and empty,
// non-nil for "[]". The others default to zero values when absent but must
// parse when present.
func Parse(h nats.Header) (Meta, error) {
	var m Meta
	if m.LSN = h.Get(LSN); m.LSN == "" {
		return Meta{}, fmt.Errorf("parse wal headers: %w %s", ErrMissing, LSN)
	}
	var err error
	if _, ok := h[Keys]; ok {
		if m.Keys, err = DecodeKeys(h.Get(Keys)); err != nil {
			return Meta{}, fmt.Errorf("parse wal headers: %w", err)
		}
	}
	if v := h.Get(Ordinal); v != "" {
		if m.Ordinal, err = strconv.Atoi(v); err != nil || m.Ordinal < 0 {
			return Meta{}, fmt.Errorf("parse wal headers: %s %q is not a non-negative integer", Ordinal, v)
		}
	}
	if v := h.Get(Xid); v != "" {
		if m.Xid, err = strconv.ParseUint(v, 10, 64); err != nil {
			return Meta{}, fmt.Errorf("parse wal headers: %s %q: %w", Xid, v, err)
		}
	}
	if v := h.Get(CommitTime); v != "" {
		if m.CommitTime, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return Meta{}, fmt.Errorf("parse wal headers: %s %q: %w", CommitTime, v, err)
		}
		m.CommitTime = m.CommitTime.UTC()
	}
	m.CommitLSN = h.Get(CommitLSN)
	m.KeySource = h.Get(KeySource)
	m.Leaf = h.Get(Leaf)
	return m, nil
}
