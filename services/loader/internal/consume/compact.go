package consume

import (
	"slices"
	"strings"

	"github.com/redms/redms/services/loader/internal/apply"
)

// A window can hold a million messages, so what it keeps of each matters.
// The client hands over every message in a buffer of its own (raw headers
// included) with a freshly decoded header map; a window keeps only the
// parsed record (its strings are one copy of the body) and the parsed
// headers, whose strings are copied out of the client's per-message value
// array or, when they repeat the previous message's (keys and key source
// repeat from one message to the next), shared with it.

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
	return m
}

// windowMsg is what a window keeps of one message.
func windowMsg(seq uint64, h map[string][]string, body []byte, prev *apply.Msg) apply.Msg {
	m := apply.NewMsg(seq, h, body)
	if m.MetaErr == nil {
		var p apply.Meta
		if prev != nil {
			p = prev.Meta
		}
		m.Meta = compactMeta(m.Meta, p)
	}
	return m
}

// grow returns msgs with room for one more message: the capacity doubles but
// stops at limit, the window's record limit. append's own steps of 1.25×
// would leave a full million-message window up to a quarter of slack, and
// copy it more often.
func grow(msgs []apply.Msg, limit int) []apply.Msg {
	if len(msgs) < cap(msgs) {
		return msgs
	}
	n := max(min(2*cap(msgs), limit), 64, len(msgs)+1)
	out := make([]apply.Msg, len(msgs), n)
	copy(out, msgs)
	return out
}
