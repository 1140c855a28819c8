package main

import (
	"context"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
)

// heldMsg is a message the holder could not apply yet.
type heldMsg struct {
	m    jetstream.Msg
	meta walheader.Meta
}

// TestFullStreamDrainsThroughHolds: a byte-limited stream (discard new)
// read by a consumer that does what the loader does with the prev chain
// (docs/DESIGN.md §2.3): a message whose prev is above the last position
// applied is held — not acked, so it keeps its bytes in the stream — until
// the missing one arrives. When capture has more bytes in flight than the
// stream has room, a publish rejected by the full stream is followed by
// later ones stored in the room the consumer frees; those are held, they
// fill the stream, and the rejected one never fits again: nothing moves.
// A stalled link to NATS makes the bytes in flight pile up, and when it
// flows again the server takes them all at once while the consumer frees
// room. capture must keep its bytes in flight well below what the stream
// can take, so every change arrives.
func TestFullStreamDrainsThroughHolds(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, loadTable)
	link := testenv.StartProxy(t, ns.Addr())
	env := liveEnv(url, "nats://"+link.Addr(), "holds")
	env["REDMS_STREAM_MAX_BYTES"] = strconv.Itoa(1 << 20)
	env["REDMS_BATCH_BYTES"] = strconv.Itoa(16 << 10)
	env["REDMS_ACK_TIMEOUT"] = "30s" // a stall piles publishes up, none times out
	startCapture(t, env)
	testenv.Eventually(t, 30*time.Second, "slot", func() bool { return slotConfirmed(t, db, "holds") != 0 })
	ctx := context.Background()
	var st jetstream.Stream
	testenv.Eventually(t, 30*time.Second, "stream", func() bool {
		var err error
		st, err = js.Stream(ctx, "REDMS_WAL")
		return err == nil
	})
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "holder", AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Hour, MaxAckPending: -1, // held messages are never redelivered
	})
	if err != nil {
		t.Fatal(err)
	}

	// 40 MB of 2 kB rows, written while the link stalls three times: each
	// stall piles up to REDMS_MAX_INFLIGHT_BYTES (32 MiB) of publishes.
	loaded := make(chan error, 1)
	go func() {
		for i := range 40 {
			if _, err := db.Exec(ctx, `INSERT INTO load SELECT g, 1, repeat(md5(g::text), 64) FROM generate_series($1::int, $2::int) g`, i*500+1, i*500+500); err != nil {
				loaded <- err
				return
			}
			time.Sleep(150 * time.Millisecond)
		}
		loaded <- nil
	}()
	stalls := make(chan struct{})
	go func() {
		defer close(stalls)
		for range 3 {
			time.Sleep(500 * time.Millisecond)
			link.Stall()
			time.Sleep(2 * time.Second)
			link.Unstall()
		}
	}()
	t.Cleanup(func() { <-stalls })
	s := newSeen()
	var applied walheader.Pos
	var held []heldMsg
	heldSeq := map[uint64]bool{}
	apply := func(h heldMsg) {
		if applied.Less(h.meta.PosLast) {
			md, _ := h.m.Metadata()
			for _, c := range changes(t, []streamMsg{{Subject: h.m.Subject(), Header: h.m.Headers(), Data: string(h.m.Data()), Seq: md.Sequence.Stream}}) {
				s.add(t, c)
			}
			applied = h.meta.PosLast
		}
		if err := h.m.DoubleAck(ctx); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	ready := func(h heldMsg) bool { return !h.meta.HasPrev || !applied.Less(h.meta.Prev) }
	var want map[int]int
	var total int
	maxHeld := 0
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) && (want == nil || !s.complete(want)) {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(500*time.Millisecond))
		if err == nil {
			for m := range batch.Messages() {
				md, err := m.Metadata()
				if err != nil {
					t.Fatal(err)
				}
				meta, err := walheader.Parse(m.Headers())
				if err != nil {
					t.Fatalf("message seq %d: %v", md.Sequence.Stream, err)
				}
				if !heldSeq[md.Sequence.Stream] {
					heldSeq[md.Sequence.Stream] = true
					held = append(held, heldMsg{m, meta})
				}
			}
		}
		sort.Slice(held, func(i, j int) bool { return held[i].meta.Pos.Less(held[j].meta.Pos) })
		for len(held) > 0 && ready(held[0]) {
			apply(held[0])
			held = held[1:]
		}
		maxHeld = max(maxHeld, len(held))
		if want == nil {
			select {
			case err := <-loaded:
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				want, total = expectedVersions(t, url)
			default:
			}
		}
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("at the end: %d messages held (at most %d), stream holds %d messages, %d of %d bytes", len(held), maxHeld, info.State.Msgs, info.State.Bytes, info.Config.MaxBytes)
	if want == nil {
		t.Fatalf("the load did not finish")
	}
	if !s.complete(want) {
		t.Errorf("the stream stopped draining: %d messages held waiting for a prev that cannot be stored (stream %d of %d bytes)", len(held), info.State.Bytes, info.Config.MaxBytes)
	}
	s.verify(t, want, total)
}
