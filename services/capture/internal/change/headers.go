package change

import (
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/walheader"
)

// setChange sets the headers known when the change is read. The header map
// is filled directly (the names are already canonical); the value slices
// passed in are shared between messages and never mutated.
func setChange(h nats.Header, db, lsn string, ord int, xid, keys, source []string) {
	vals := make([]string, 3)
	vals[0], vals[1], vals[2] = walheader.MsgIDFor(db, lsn, ord), lsn, strconv.Itoa(ord)
	h[walheader.MsgID] = vals[0:1:1]
	h[walheader.LSN] = vals[1:2:2]
	h[walheader.Ordinal] = vals[2:3:3]
	if xid != nil {
		h[walheader.Xid] = xid
	}
	h[walheader.Keys] = keys
	h[walheader.KeySource] = source
}

// setCommit sets the headers known at COMMIT.
func setCommit(h nats.Header, lsn, at []string) {
	h[walheader.CommitLSN] = lsn
	if at != nil {
		h[walheader.CommitTime] = at
	}
}

func subjectOf(db, schema, table string) string {
	return subject.Subject(subject.Table{DB: db, Schema: schema, Name: table})
}

const hdrLeaf = walheader.Leaf
