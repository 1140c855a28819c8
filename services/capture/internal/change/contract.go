package change

import (
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/walheader"
)

// setChange sets the headers known when the change is read. The header map
// is filled directly: the names are already canonical.
func setChange(h nats.Header, db, lsn string, ord int, xid uint32, keys, source string) {
	h[walheader.MsgID] = []string{walheader.MsgIDFor(db, lsn, ord)}
	h[walheader.LSN] = []string{lsn}
	h[walheader.Ordinal] = []string{strconv.Itoa(ord)}
	if xid != 0 {
		h[walheader.Xid] = []string{strconv.FormatUint(uint64(xid), 10)}
	}
	h[walheader.Keys] = []string{keys}
	h[walheader.KeySource] = []string{source}
}

// setCommit sets the headers known at COMMIT.
func setCommit(h nats.Header, lsn, at string) {
	h[walheader.CommitLSN] = []string{lsn}
	if at != "" {
		h[walheader.CommitTime] = []string{at}
	}
}

func subjectOf(db, schema, table string) string {
	return subject.Subject(subject.Table{DB: db, Schema: schema, Name: table})
}

const hdrLeaf = walheader.Leaf
