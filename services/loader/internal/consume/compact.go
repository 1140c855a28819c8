package consume

import (
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
// array or, when they repeat the previous message's (commit LSN, keys and
// key source repeat within a transaction), shared with it.

// compactMeta returns m with its strings owned by m alone or shared with
// prev's equal ones, so that m keeps nothing of the client's message alive.
func compactMeta(m, prev walheader.Meta) walheader.Meta {
	share := func(s, p string) string {
		if s == p {
			return p
		}
		return strings.Clone(s)
	}
	m.LSN = share(m.LSN, prev.LSN)
	m.CommitLSN = share(m.CommitLSN, prev.CommitLSN)
	m.KeySource = share(m.KeySource, prev.KeySource)
	m.Leaf = share(m.Leaf, prev.Leaf)
	if m.Keys != nil && prev.Keys != nil && slices.Equal(m.Keys, prev.Keys) {
		m.Keys = prev.Keys
	}
	return m
}

// windowMsg is what a window keeps of one message.
func windowMsg(seq uint64, h map[string][]string, body []byte, prev *apply.Msg) apply.Msg {
	m := apply.NewMsg(seq, h, body)
	if m.MetaErr == nil {
		var p walheader.Meta
		if prev != nil {
			p = prev.Meta
		}
		m.Meta = compactMeta(m.Meta, p)
	}
	return m
}
