package apply

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/fold"
	"github.com/redms/redms/services/loader/internal/warehouse"
)

// Msg is one JetStream message of the table, parsed on arrival: Meta is
// what its headers (docs/CONTRACTS.md) say, Record what fold needs of its
// test_decoding text. A window can hold a million messages, so a message
// keeps neither a header map (several hundred bytes each) nor its raw body
// next to the parsed record (whose strings are one copy of the body), nor
// the parser's whole Record. MetaErr is set when the headers did not parse,
// RecordErr when the body did not: applying a window holding such a message
// parks the table, unless the watermark says the message was applied before
// (RecordErr only).
type Msg struct {
	Seq       uint64
	Meta      Meta
	MetaErr   error
	Record    fold.Record
	RecordErr error
}

// Meta is what the applier reads of a message's headers (walheader.Meta
// without the commit LSN, ordinal, xid and leaf): Keys is nil when its
// header is absent.
type Meta struct {
	LSN        string
	CommitTime time.Time
	Keys       []string
	KeySource  string
}

// MetaOf is what the applier reads of m; it shares m's strings.
func MetaOf(m walheader.Meta) Meta {
	return Meta{LSN: m.LSN, CommitTime: m.CommitTime, Keys: m.Keys, KeySource: m.KeySource}
}

// NewMsg parses the message of stream sequence seq with headers h and body
// data; data may be reused afterwards.
func NewMsg(seq uint64, h nats.Header, data []byte) Msg {
	meta, err := walheader.Parse(h)
	m := Msg{Seq: seq, Meta: MetaOf(meta), MetaErr: err}
	var rec testdecoding.Record
	if err := testdecoding.ParseInto(data, &rec); err != nil {
		m.RecordErr = err
	} else {
		m.Record = fold.RecordOf(&rec)
	}
	return m
}

// Window is a run of one table's messages in stream order. The table comes
// from the subject, never from the body.
type Window struct {
	Table subject.Table
	Msgs  []Msg
}

// Result says what a window did.
type Result struct {
	Applied     bool           // false when nothing was applied (all at or below the watermark, or skipped)
	Rows        map[string]int // by action: "insert" (upsert), "delete", "update", "truncate"
	Replays     int            // replay-shaped orders, plus messages at or below the watermark
	Skipped     map[string]int // messages not applied, by reason: "no-key"
	Adjusted    map[string]int // value rule applications by rule (typemap.Rule*)
	StagedBytes int64
	LastCommit  time.Time // Redms-Commit-Time of the newest change applied
	FirstLSN    string
	LastLSN     string
}

// Config is what the applier needs to know.
type Config struct {
	Dialect        warehouse.Dialect   // postgres or redshift
	TargetSchema   string              // "" = the source schema
	StateSchema    string              // watermark table schema, default "public"
	TableKeys      map[string][]string // "schema.table" -> key columns, used when the Redms-Keys header is empty or absent
	NumericDefault typemap.Numeric     // target of an unconstrained numeric, default 19,8

	S3Bucket, S3Prefix string
	PartBytes          int64
	KeepObjects        bool

	RedshiftIAMRole                            string
	S3AccessKeyID, S3SecretAccessKey, S3Region string
}

// ParkError is a permanent failure: the window cannot be applied as it is
// (unparseable record, a value or DDL the warehouse rejects for good). The
// table must park.
type ParkError struct {
	Table             string
	FirstLSN, LastLSN string
	FirstSeq, LastSeq uint64
	Reason            string
	Err               error
}

func (e *ParkError) Error() string {
	return fmt.Sprintf("park %s (lsn %s..%s, seq %d..%d): %s", e.Table, e.FirstLSN, e.LastLSN, e.FirstSeq, e.LastSeq, e.Reason)
}

func (e *ParkError) Unwrap() error { return e.Err }
