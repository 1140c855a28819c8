// Package slotrecord keeps the durable evidence that capture read a slot
// (docs/CONTRACTS.md: KV bucket REDMS_CAPTURE): when the slot is missing
// later (a failover, max_slot_wal_keep_size), creating it again would skip
// every change in between, and the record says so and from where.
package slotrecord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/natsconn"
	"github.com/redms/redms/pkg/subject"
)

// Bucket is the KV bucket of the records.
const Bucket = "REDMS_CAPTURE"

// Record is what capture keeps per stream, database and slot.
type Record struct {
	Stream   string `json:"stream"`
	Database string `json:"database"`
	Slot     string `json:"slot"`
	// StartedAt is when a replication session last started on the slot.
	StartedAt time.Time `json:"started_at"`
	// ConfirmedLSN is the newest position capture confirmed to Postgres
	// that it recorded (at most a write interval behind), X/Y.
	ConfirmedLSN string    `json:"confirmed_lsn"`
	ConfirmedAt  time.Time `json:"confirmed_at"`
}

// Key is the record's key: stream, database and slot, each a subject
// token with '~' as '=' (KV keys allow only [-/_=.a-zA-Z0-9]).
func Key(stream, db, slot string) string {
	tok := func(s string) string { return strings.ReplaceAll(subject.EscapeToken(s), "~", "=") }
	return "slot." + tok(stream) + "." + tok(db) + "." + tok(slot)
}

// Open returns the bucket, creating it when missing.
func Open(ctx context.Context, js jetstream.KeyValueManager, replicas int) (jetstream.KeyValue, error) {
	kv, err := natsconn.OpenKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "redms-capture: which slots capture read, and up to where (docs/CONTRACTS.md)",
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		History:     1,
	})
	if err != nil {
		return nil, err
	}
	return kv, nil
}

// KV is the part of a jetstream.KeyValue a Keeper uses.
type KV interface {
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
	Put(ctx context.Context, key string, value []byte) (uint64, error)
}

var _ KV = (jetstream.KeyValue)(nil)

// Keeper reads and writes one slot's record.
type Keeper struct {
	kv  KV
	key string

	mu  sync.Mutex
	rec Record // what was written last

	confirmed atomic.Uint64
}

// NewKeeper returns the keeper of stream, db and slot's record.
func NewKeeper(kv KV, stream, db, slot string) *Keeper {
	return &Keeper{kv: kv, key: Key(stream, db, slot), rec: Record{Stream: stream, Database: db, Slot: slot}}
}

// Key is the record's KV key.
func (k *Keeper) Key() string { return k.key }

// Last returns the record of an earlier capture of the slot; found is
// false when there is none.
func (k *Keeper) Last(ctx context.Context) (Record, bool, error) {
	e, err := k.kv.Get(ctx, k.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("read %s %s: %w", Bucket, k.key, err)
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Record{}, false, fmt.Errorf("decode %s %s: %w", Bucket, k.key, err)
	}
	return r, true, nil
}

// Started records a replication session starting on the slot at lsn.
func (k *Keeper) Started(ctx context.Context, lsn uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now().UTC()
	r := k.rec
	r.StartedAt, r.ConfirmedLSN, r.ConfirmedAt = now, pglogrepl.LSN(lsn).String(), now
	k.confirmed.Store(lsn)
	return k.put(ctx, r)
}

// Confirmed notes a position confirmed to Postgres; Run writes it.
func (k *Keeper) Confirmed(lsn uint64) {
	for {
		old := k.confirmed.Load()
		if lsn <= old || k.confirmed.CompareAndSwap(old, lsn) {
			return
		}
	}
}

// Run writes the newest confirmed position every interval until ctx ends.
func (k *Keeper) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			wctx, cancel := context.WithTimeout(ctx, every)
			_ = k.Flush(wctx) // a failure is tried again next tick
			cancel()
		case <-ctx.Done():
			return nil
		}
	}
}

// Flush writes the newest confirmed position when it is not written yet.
func (k *Keeper) Flush(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	lsn := pglogrepl.LSN(k.confirmed.Load())
	if lsn == 0 || lsn.String() == k.rec.ConfirmedLSN || k.rec.StartedAt.IsZero() {
		return nil
	}
	r := k.rec
	r.ConfirmedLSN, r.ConfirmedAt = lsn.String(), time.Now().UTC()
	return k.put(ctx, r)
}

func (k *Keeper) put(ctx context.Context, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", Bucket, k.key, err)
	}
	if _, err := k.kv.Put(ctx, k.key, b); err != nil {
		return fmt.Errorf("write %s %s: %w", Bucket, k.key, err)
	}
	k.rec = r
	return nil
}
