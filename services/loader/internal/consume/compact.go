package consume

import (
	"slices"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/redms/redms/pkg/walheader"
)

// A window can hold a million messages, so what it keeps of each matters.
// The client hands over every message in a buffer of its own (raw headers
// included) with a freshly decoded header map; a window keeps only the body,
// copied into large shared chunks, and a header map whose key strings and
// repeated values (commit LSN, time, xid and keys repeat within a
// transaction) are shared with the previous message; the others are copied
// out of the client's per-message value array.

// arenaChunk is the size of the chunks message bodies are copied into.
const arenaChunk = 4 << 20

// arena copies message bodies into shared chunks.
type arena struct {
	buf []byte
}

// copy returns b copied into the arena.
func (a *arena) copy(b []byte) []byte {
	if len(b) > cap(a.buf)-len(a.buf) {
		a.buf = make([]byte, 0, max(arenaChunk, len(b)))
	}
	off := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[off:len(a.buf):len(a.buf)]
}

// reset lets the chunks go with the window that used them.
func (a *arena) reset() { a.buf = nil }

// headerKeys are the header names WAL messages carry, as shared strings.
var headerKeys = map[string]string{
	walheader.MsgID: walheader.MsgID, walheader.LSN: walheader.LSN, walheader.Ordinal: walheader.Ordinal,
	walheader.CommitLSN: walheader.CommitLSN, walheader.Xid: walheader.Xid, walheader.CommitTime: walheader.CommitTime,
	walheader.Keys: walheader.Keys, walheader.KeySource: walheader.KeySource, walheader.Leaf: walheader.Leaf,
}

// compactHeader returns h with known keys replaced by shared strings and
// values equal to prev's replaced by prev's slices. The result must be
// treated as read-only, like every message header.
func compactHeader(h, prev nats.Header) nats.Header {
	out := make(nats.Header, len(h))
	for k, vs := range h {
		if shared, ok := headerKeys[k]; ok {
			k = shared
		}
		if pv, ok := prev[k]; ok && slices.Equal(pv, vs) {
			vs = pv
		} else {
			// The client allocates one array for all values of a message:
			// keeping one of its slices would keep them all.
			vs = cloneValues(vs)
		}
		out[k] = vs
	}
	return out
}

func cloneValues(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strings.Clone(v)
	}
	return out
}
