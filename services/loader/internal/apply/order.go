package apply

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/fold"
)

// Ordering a window by source position (docs/DESIGN.md §2.3).
//
// Messages are sorted by position (split parts by part number); messages
// of a capture before positions (legacy: Redms-Lsn, no Redms-Pos) come
// first, by stream sequence: they were all published before any positioned
// one. Then, walking the sorted messages against the applied state:
//
//   - a message whose last position is at or below the last position applied
//     or accepted is a replay (duplicates of one position included): never
//     folded, removed from the stream with the window;
//   - a legacy message is a replay when its sequence is at or below the
//     legacy fence (the last sequence applied by this target's loaders
//     before positions, or since) or once any positioned change was
//     applied; else it is accepted;
//   - a positioned message is accepted when it has no prev or its prev is at
//     or below the last position applied or accepted before it, and, when
//     split, all its parts are there (they are joined and parsed);
//   - at the first message that fails that, it and every later one are held:
//     not applied, not removed, carried into the runner's next window.

// appliedState is a target's row in its state table, as a window read it.
type appliedState struct {
	claimed bool          // the table has a row
	applied walheader.Pos // position applied last
	legacy  uint64        // fence of legacy messages
}

// selection is a window's messages sorted out against the applied state.
type selection struct {
	accepted []accepted // in apply order
	replays  int        // messages at or below the applied position, duplicates
	held     []int      // indexes of held messages in Window.Msgs
	waitFor  walheader.Pos
	heldAt   walheader.Pos // position of the first held change
	partial  bool          // the first held change misses parts (else its prev)
	last     walheader.Pos // position the window advances the state to
	legacy   uint64        // legacy fence the window advances the state to
}

// accepted is one change the window applies.
type accepted struct {
	msg *Msg
	rec *fold.Record // msg.Record, or the joined parts' record
}

func legacyMsg(m *Msg) bool { return m.Meta.Pos.IsZero() }

// compareMsgs orders legacy messages first by sequence, then positioned
// ones by position, part and sequence.
func compareMsgs(a, b *Msg) int {
	la, lb := legacyMsg(a), legacyMsg(b)
	switch {
	case la && lb:
		return cmpUint(a.Seq, b.Seq)
	case la:
		return -1
	case lb:
		return 1
	}
	if c := a.Meta.Pos.Compare(b.Meta.Pos); c != 0 {
		return c
	}
	ka, _ := a.Meta.Parts()
	kb, _ := b.Meta.Parts()
	if ka != kb {
		return ka - kb
	}
	return cmpUint(a.Seq, b.Seq)
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// order sorts out the window's messages against st.
func (x *job) order(st appliedState) (selection, error) {
	msgs := x.w.Msgs
	idx := make([]int, len(msgs))
	for i := range idx {
		idx[i] = i
	}
	cmp := func(i, j int) int { return compareMsgs(&msgs[i], &msgs[j]) }
	if !slices.IsSortedFunc(idx, cmp) {
		slices.SortStableFunc(idx, cmp)
	}
	sel := selection{last: st.applied, legacy: st.legacy}
	holding := false
	for i := 0; i < len(idx); {
		m := &msgs[idx[i]]
		if legacyMsg(m) {
			i++
			if m.Seq <= sel.legacy || !st.applied.IsZero() {
				sel.replays++
				continue
			}
			sel.accepted = append(sel.accepted, accepted{msg: m, rec: &m.Record})
			sel.legacy = m.Seq
			continue
		}
		j := i + 1
		for j < len(idx) && msgs[idx[j]].Meta.Pos == m.Meta.Pos {
			j++
		}
		group := idx[i:j]
		i = j
		switch {
		case holding:
			sel.held = append(sel.held, group...)
			continue
		case m.Meta.Last().Compare(sel.last) <= 0:
			// (A message of several changes only partly at or below, as a
			// restart may cut batches differently, is applied whole:
			// applying its applied part again changes nothing, §2.4.)
			sel.replays += len(group)
			continue
		case m.Meta.HasPrev && sel.last.Less(m.Meta.Prev):
			holding = true
			sel.waitFor, sel.heldAt = m.Meta.Prev, m.Meta.Pos
			sel.held = append(sel.held, group...)
			continue
		}
		a, used, err := x.whole(group)
		if err != nil {
			return selection{}, err
		}
		if a.msg == nil {
			holding, sel.partial = true, true
			sel.waitFor, sel.heldAt = m.Meta.Pos, m.Meta.Pos
			sel.held = append(sel.held, group...)
			continue
		}
		sel.accepted = append(sel.accepted, a)
		sel.replays += len(group) - used
		sel.last = m.Meta.Last()
	}
	return sel, nil
}

// whole is the change of a group of messages at one position: a whole
// message, or its parts joined and parsed. a.msg is nil while parts are
// missing; used is how many messages of the group it takes (the others are
// duplicates).
func (x *job) whole(group []int) (a accepted, used int, err error) {
	msgs := x.w.Msgs
	for _, i := range group {
		if k, _ := msgs[i].Meta.Parts(); k == 0 {
			return accepted{msg: &msgs[i], rec: &msgs[i].Record}, 1, nil
		}
	}
	first := &msgs[group[0]]
	_, n := first.Meta.Parts()
	parts := make([]*Msg, 0, n)
	for _, i := range group { // sorted by part number
		m := &msgs[i]
		k, nk := m.Meta.Parts()
		if nk != n {
			err := fmt.Errorf("message seq %d is part %d/%d of the change at %s, message seq %d part %d/%d", m.Seq, k, nk, m.Meta.Pos, first.Seq, 1, n)
			return accepted{}, 0, x.park(err.Error(), err)
		}
		if k == len(parts)+1 {
			parts = append(parts, m)
		}
	}
	if len(parts) < n {
		return accepted{}, 0, nil
	}
	bodies := make([][]byte, n)
	for i, p := range parts {
		bodies[i] = p.Meta.Extra.Body
	}
	var rec testdecoding.Record
	if err := testdecoding.ParseInto(bytes.Join(bodies, nil), &rec); err != nil {
		return accepted{}, 0, x.unparseable(parts[0], err)
	}
	r := fold.RecordOf(&rec)
	return accepted{msg: parts[0], rec: &r}, n, nil
}

// unparseable is the park error of message m whose record does not parse.
func (x *job) unparseable(m *Msg, err error) error {
	reason := err.Error()
	if pe, ok := errors.AsType[*testdecoding.ParseError](err); ok {
		reason = pe.Reason
	}
	return x.park(fmt.Sprintf("unparseable record at lsn %s (seq %d): %s", m.Meta.LSN, m.Seq, reason), err)
}
