// Package walheader names the NATS headers every WAL message carries (see
// docs/CONTRACTS.md) and converts them to and from a typed Meta, so capture
// (which sets them) and loader (which reads them) cannot drift apart.
package walheader

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Header names.
const (
	// MsgID is JetStream's dedup id (MsgIDForPos; MsgIDFor on messages of
	// a capture that predates positions).
	MsgID = "Nats-Msg-Id"
	// LSN is the change's LSN in Postgres text form X/Y (a batch's first
	// record's).
	LSN = "Redms-Lsn"
	// Ordinal is the change's 0-based index among changes at the same LSN
	// (messages of a capture that predates positions; Pos orders now).
	Ordinal = "Redms-Ordinal"
	// CommitLSN is the LSN of the transaction's commit (on a batch, of its
	// last record's transaction; Txns has every record's).
	CommitLSN = "Redms-Commit-Lsn"
	// Xid is the transaction id, decimal (a batch's last record's).
	Xid = "Redms-Xid"
	// CommitTime is the commit timestamp, RFC 3339 with nanoseconds, UTC
	// (a batch's last record's).
	CommitTime = "Redms-Commit-Time"
	// Keys is a JSON array of the table's key column names, [] when none.
	Keys = "Redms-Keys"
	// KeySource says where Keys came from (KeySourcePrimaryKey, ...).
	KeySource = "Redms-Key-Source"
	// Leaf is the leaf partition (schema.table, quoted like test_decoding)
	// when the change travels on its partition root's subject; only on a
	// message of one change (a batch may mix leaves: its body names them).
	Leaf = "Redms-Leaf"
	// FirstPos is the source position of the message's first change
	// (docs/DESIGN.md §2.3), rendered by Pos.String.
	FirstPos = "Redms-Pos"
	// LastPos is the position of the message's last change; absent when the
	// message holds one change.
	LastPos = "Redms-Pos-Last"
	// PrevPos is the position of the last change of the message capture
	// published before this one on the same subject in the same session;
	// absent on the session's first message of the subject.
	PrevPos = "Redms-Prev-Pos"
	// Part is "k/n" on part k (from 1) of a record split into n messages
	// because it exceeds the server's max payload; absent on whole records.
	Part = "Redms-Part"
	// Types is a JSON object of column name to declared type
	// (format_type(atttypid, atttypmod)) for the columns whose declared type
	// says more than test_decoding prints (a type modifier); absent when none.
	Types = "Redms-Types"
	// Missing is a JSON object of column name to the value (text form, or
	// null) Postgres fills existing rows with for a column added with a
	// constant default (pg_attribute.attmissingval); absent when none.
	Missing = "Redms-Missing"
	// PartitionBounds is a JSON Partition on a TRUNCATE of a leaf partition that
	// travels on its root's subject.
	PartitionBounds = "Redms-Partition"
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

	// Pos is zero on a message from a capture that predates positions.
	Pos     Pos
	PosLast Pos // equal to Pos when the message holds one change
	Prev    Pos
	HasPrev bool
	// Part and Parts are k and n of a split record's part k of n; both 0
	// on a whole record.
	Part, Parts int
	Types       map[string]string  // nil when absent
	Missing     map[string]*string // nil when absent; a nil value is NULL
	Partition   *Partition         // nil when absent
	Snapshot    *Snapshot          // Redms-Snapshot; nil when absent

	// Lens, Runs and LSNs describe a batch's records (batch.go): their
	// lengths, transactions and change LSNs (LSNs[0] is LSN's); nil on a
	// message of one change.
	Lens []int
	Runs []Run
	LSNs []uint64
}

// Header renders m as the headers of a message on subject, including
// Nats-Msg-Id (MsgIDForPos when m has positions; a message of a capture
// before positions, which has Redms-Ordinal instead, gets MsgIDFor with
// subject in the place of the database). A zero CommitTime and an empty
// Leaf are left out, and so are the position headers of a zero Pos and the
// optional headers that are empty.
func (m Meta) Header(subject string) nats.Header {
	h := nats.Header{}
	if m.Pos.IsZero() {
		h.Set(MsgID, MsgIDFor(subject, m.LSN, m.Ordinal))
		h.Set(Ordinal, strconv.Itoa(m.Ordinal))
	} else {
		suffix := ""
		if m.Parts > 0 {
			suffix = "p" + strconv.Itoa(m.Part)
		}
		h.Set(MsgID, MsgIDForPos(subject, m.Pos, m.PosLast, suffix))
		h.Set(FirstPos, m.Pos.String())
		if !m.PosLast.IsZero() && m.PosLast != m.Pos {
			h.Set(LastPos, m.PosLast.String())
		}
		if m.HasPrev {
			h.Set(PrevPos, m.Prev.String())
		}
	}
	if m.Parts > 0 {
		h.Set(Part, strconv.Itoa(m.Part)+"/"+strconv.Itoa(m.Parts))
	}
	if len(m.Types) > 0 {
		h.Set(Types, encodeJSON(m.Types))
	}
	if len(m.Missing) > 0 {
		h.Set(Missing, encodeJSON(m.Missing))
	}
	if m.Partition != nil {
		h.Set(PartitionBounds, encodeJSON(m.Partition))
	}
	if m.Snapshot != nil {
		h.Set(SnapshotHeader, EncodeSnapshot(m.Snapshot))
	}
	if len(m.Runs) > 0 {
		h.Set(Lens, EncodeLens(m.Lens))
		h.Set(Txns, EncodeRuns(m.Runs))
		h.Set(LSNDeltas, EncodeLSNDeltas(m.LSNs))
	}
	h.Set(LSN, m.LSN)
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
	if err := parsePositions(h, &m); err != nil {
		return Meta{}, fmt.Errorf("parse wal headers: %w", err)
	}
	return m, nil
}

// parseLSN parses Postgres' X/Y form.
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, errH := strconv.ParseUint(hi, 16, 32)
	l, errL := strconv.ParseUint(lo, 16, 32)
	if !ok || errH != nil || errL != nil {
		return 0, fmt.Errorf("%s %q: want X/Y", LSN, s)
	}
	return h<<32 | l, nil
}

func parsePositions(h nats.Header, m *Meta) error {
	var err error
	if v := h.Get(FirstPos); v != "" {
		if m.Pos, err = ParsePos(v); err != nil {
			return err
		}
		m.PosLast = m.Pos
	}
	if v := h.Get(LastPos); v != "" {
		if m.Pos.IsZero() {
			return fmt.Errorf("%s without %s", LastPos, FirstPos)
		}
		if m.PosLast, err = ParsePos(v); err != nil {
			return err
		}
		if m.PosLast.Less(m.Pos) {
			return fmt.Errorf("%s %s is before %s %s", LastPos, m.PosLast, FirstPos, m.Pos)
		}
	}
	if v := h.Get(PrevPos); v != "" {
		if m.Prev, err = ParsePos(v); err != nil {
			return err
		}
		m.HasPrev = true
	}
	if v := h.Get(Part); v != "" {
		k, n, ok := strings.Cut(v, "/")
		var errK, errN error
		m.Part, errK = strconv.Atoi(k)
		m.Parts, errN = strconv.Atoi(n)
		if !ok || errK != nil || errN != nil || m.Part < 1 || m.Part > m.Parts {
			return fmt.Errorf("%s %q: want k/n with 1 <= k <= n", Part, v)
		}
	}
	if v := h.Get(Types); v != "" {
		if err := decodeJSON(Types, v, &m.Types); err != nil {
			return err
		}
	}
	if v := h.Get(Missing); v != "" {
		if err := decodeJSON(Missing, v, &m.Missing); err != nil {
			return err
		}
	}
	if err := parseBatch(h, m); err != nil {
		return err
	}
	if v := h.Get(PartitionBounds); v != "" {
		m.Partition = new(Partition)
		if err := decodeJSON(PartitionBounds, v, m.Partition); err != nil {
			return err
		}
	}
	if v := h.Get(SnapshotHeader); v != "" {
		if m.Snapshot, err = DecodeSnapshot(v); err != nil {
			return err
		}
	}
	return nil
}

// parseBatch reads Lens, Txns and LSNDeltas, which come together and must
// agree with each other and with the first and last position.
func parseBatch(h nats.Header, m *Meta) error {
	lens, txns, deltas := h.Get(Lens), h.Get(Txns), h.Get(LSNDeltas)
	if lens == "" && txns == "" && deltas == "" {
		return nil
	}
	if lens == "" || txns == "" || deltas == "" {
		return fmt.Errorf("%s, %s and %s come together", Lens, Txns, LSNDeltas)
	}
	var err error
	if m.Lens, err = DecodeLens(lens); err != nil {
		return err
	}
	if m.Runs, err = DecodeRuns(txns); err != nil {
		return err
	}
	n := 0
	for _, r := range m.Runs {
		n += r.Count
	}
	if n != len(m.Lens) {
		return fmt.Errorf("%s counts %d records, %s %d", Txns, n, Lens, len(m.Lens))
	}
	firstLSN, err := parseLSN(m.LSN)
	if err != nil {
		return err
	}
	if m.LSNs, err = DecodeLSNDeltas(firstLSN, deltas); err != nil {
		return err
	}
	if len(m.LSNs) != n {
		return fmt.Errorf("%s gives %d LSNs for %d records", LSNDeltas, len(m.LSNs), n)
	}
	for i := 1; i < len(m.Runs); i++ {
		prev, r := m.Runs[i-1], m.Runs[i]
		end := Pos{Base: prev.Base, Index: prev.First + uint64(prev.Count) - 1}
		if p := (Pos{Base: r.Base, Index: r.First}); !end.Less(p) {
			return fmt.Errorf("%s: run %d starts at %s, not after the previous run's end %s", Txns, i+1, p, end)
		}
	}
	first, last := m.Runs[0], m.Runs[len(m.Runs)-1]
	if p := (Pos{Base: first.Base, Index: first.First}); p != m.Pos {
		return fmt.Errorf("%s starts at %s, %s is %s", Txns, p, FirstPos, m.Pos)
	}
	if p := (Pos{Base: last.Base, Index: last.First + uint64(last.Count) - 1}); p != m.PosLast {
		return fmt.Errorf("%s ends at %s, %s is %s", Txns, p, LastPos, m.PosLast)
	}
	return nil
}
