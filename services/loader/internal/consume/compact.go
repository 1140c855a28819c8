package consume

import (
	"maps"
	"slices"
	"strings"

	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/apply"
)

// A window can hold a million messages, so what it keeps of each matters.
// The client hands over every message in a buffer of its own (raw headers
// included) with a freshly decoded header map; a window keeps only the
// parsed record (its strings are one copy of the body) and the parsed
// headers, whose strings are copied out of the client's per-message value
// array or, when they repeat the previous message's (keys, key source and
// declared types repeat from one message to the next), shared with it.

// compactMeta returns m with its strings owned by m alone or shared with
// prev's equal ones, so that m keeps nothing of the client's message alive.
func compactMeta(m, prev apply.Meta) apply.Meta {
	share := func(s, p string) string {
		if s == p {
			return p
		}
		return strings.Clone(s)
	}
	m.LSN = share(m.LSN, prev.LSN)
	m.KeySource = share(m.KeySource, prev.KeySource)
	if m.Keys != nil && prev.Keys != nil && slices.Equal(m.Keys, prev.Keys) {
		m.Keys = prev.Keys
	}
	// Redms-Types comes on every message of a table with a type modifier.
	if m.Types != nil && prev.Types != nil && maps.Equal(m.Types, prev.Types) {
		m.Types = prev.Types
	}
	// Redms-Missing comes on every message of a table while its catalog
	// has a missing value: share the previous message's.
	if onlyMissing(m.Extra) && onlyMissing(prev.Extra) && maps.EqualFunc(m.Extra.Missing, prev.Extra.Missing, equalValue) {
		m.Extra = prev.Extra
	}
	return m
}

// onlyMissing reports whether e carries Redms-Missing and nothing else.
func onlyMissing(e *apply.Extra) bool {
	return e != nil && e.Missing != nil && e.PosLast.IsZero() && e.Parts == 0 && e.Partition == nil && e.Snapshot == nil
}

func equalValue(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// appendMsgs appends what a window keeps of one message to dst: its
// changes (apply.AppendChanges), their header values shared with the
// previous message's (dst's last) where equal. meta and err are what
// walheader.Parse said of the message's headers; a message whose headers
// do not parse is one Msg with MetaErr.
func appendMsgs(dst []apply.Msg, seq uint64, meta walheader.Meta, err error, body []byte) []apply.Msg {
	if err != nil {
		return append(dst, apply.Msg{Seq: seq, MetaErr: err})
	}
	var p apply.Meta
	if len(dst) > 0 {
		p = dst[len(dst)-1].Meta
	}
	first := len(dst)
	dst = apply.AppendChanges(dst, seq, meta, body)
	if dst[first].MetaErr != nil {
		return dst
	}
	m := &dst[first].Meta
	*m = compactMeta(*m, p)
	for i := first + 1; i < len(dst); i++ { // a batch's records share its headers
		dst[i].Meta.Keys, dst[i].Meta.KeySource, dst[i].Meta.Types, dst[i].Meta.Extra = m.Keys, m.KeySource, m.Types, m.Extra
	}
	return dst
}

// grow returns msgs with room for n more messages: the capacity doubles
// but stops at limit, the window's record limit. append's own steps of
// 1.25× would leave a full million-message window up to a quarter of
// slack, and copy it more often.
func grow(msgs []apply.Msg, limit, n int) []apply.Msg {
	if len(msgs)+n <= cap(msgs) {
		return msgs
	}
	c := max(min(2*cap(msgs), limit), 64, len(msgs)+n)
	out := make([]apply.Msg, len(msgs), c)
	copy(out, msgs)
	return out
}
