package consume

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/apply"
	"github.com/redms/redms/services/loader/internal/window"
)

// publishBatch sends bodies as one batch of transaction base (positions
// base:0, base:1, …).
func (e *env) publishBatch(t *testing.T, base uint64, bodies ...string) {
	t.Helper()
	meta := walheader.Meta{LSN: fmt.Sprintf("0/%X", base), Keys: []string{"id"}, KeySource: walheader.KeySourcePrimaryKey,
		Pos: walheader.Pos{Base: base}, PosLast: walheader.Pos{Base: base, Index: uint64(len(bodies) - 1)},
		Runs: []walheader.Run{{Base: base, Count: len(bodies), CommitTime: time.Now()}}}
	var recs [][]byte
	for i, b := range bodies {
		recs = append(recs, []byte(b))
		meta.Lens = append(meta.Lens, len(b))
		meta.LSNs = append(meta.LSNs, base+uint64(i))
	}
	if _, err := e.js.PublishMsg(context.Background(), &nats.Msg{Subject: e.table.Subject, Header: meta.Header("shop"), Data: walheader.JoinBody(nil, recs)}); err != nil {
		t.Fatal(err)
	}
}

// partHolder holds the last change of the first window's first message
// and applies everything else.
type partHolder struct {
	mu      sync.Mutex
	windows [][]uint64
}

func (h *partHolder) Apply(_ context.Context, w apply.Window) (apply.Result, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var seqs []uint64
	for _, m := range w.Msgs {
		seqs = append(seqs, m.Seq)
	}
	h.windows = append(h.windows, seqs)
	if len(h.windows) == 1 {
		return apply.Result{Applied: true, Changes: len(seqs) - 1, Held: []int{2}}, nil
	}
	return apply.Result{Applied: true, Changes: len(seqs)}, nil
}

func (h *partHolder) got() [][]uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.windows)
}

// A window counts changes, takes a batch whole, and a message one change
// of which is held stays in the stream whole (carried into the next window
// with all its changes) while the other messages leave it.
func TestBatchIsHeldWhole(t *testing.T) {
	for _, mode := range []AckMode{AckPurge, AckEach} {
		t.Run(string(mode), func(t *testing.T) {
			e := setup(t)
			e.publishBatch(t, 0x100, insert(1), insert(2), insert(3))
			e.publishBatch(t, 0x200, insert(4), insert(5), insert(6))
			h := &partHolder{}
			cfg := config(window.Limits{Duration: 200 * time.Millisecond, Bytes: 1 << 20, Records: 4})
			cfg.AckMode = mode
			e.run(t, cfg, h)
			eventually(t, "a window", func() bool { return len(h.got()) >= 1 })
			if got := h.got(); fmt.Sprint(got[0]) != "[1 1 1 2 2 2]" {
				t.Fatalf("first window %v, want both batches whole (6 changes, limit 4)", got[0])
			}
			// ack: the second message is acked; purge: it waits for a
			// purge above the held one.
			left := uint64(1)
			if mode == AckPurge {
				left = 2
			}
			eventually(t, "the second message removed", func() bool { return e.streamMsgs(t) == left })
			time.Sleep(300 * time.Millisecond)
			if n := e.streamMsgs(t); n != left {
				t.Fatalf("%d messages in the stream, want %d", n, left)
			}
			e.publishBatch(t, 0x300, insert(7))
			eventually(t, "two windows", func() bool { return len(h.got()) >= 2 })
			if got := h.got(); fmt.Sprint(got[1]) != "[1 1 1 3]" {
				t.Fatalf("second window %v, want every change of the held message carried", got[1])
			}
			eventually(t, "the stream to empty", func() bool { return e.streamMsgs(t) == 0 })
		})
	}
}
