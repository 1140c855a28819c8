package slotrecord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/jackc/pglogrepl"
	"github.com/nats-io/nats.go/jetstream"
)

// SpillsKept is how many spilled transactions' bases are kept: the newest,
// by base. A transaction is read again only while the slot has not
// confirmed it, so only the last few can be; spills are rare (a
// transaction larger than REDMS_TXN_BUFFER).
const SpillsKept = 256

// Spills keeps the base of every transaction capture published before its
// COMMIT (docs/DESIGN.md §2.3), by xid, in the record's bucket under key
// "spill." + the slot record's key: a session that reads the transaction
// again, having started elsewhere, numbers it the same. JSON: an object of
// xid → base (X/Y).
type Spills struct {
	kv  KV
	key string

	mu sync.Mutex
	m  map[uint32]uint64
}

// LoadSpills reads the slot's spilled bases.
func LoadSpills(ctx context.Context, kv KV, stream, db, slot string) (*Spills, error) {
	s := &Spills{kv: kv, key: "spill." + Key(stream, db, slot), m: map[uint32]uint64{}}
	e, err := kv.Get(ctx, s.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", Bucket, s.key, err)
	}
	var raw map[string]string
	if err := json.Unmarshal(e.Value(), &raw); err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", Bucket, s.key, err)
	}
	for x, b := range raw {
		xid, err := strconv.ParseUint(x, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("read %s/%s: xid %q: %w", Bucket, s.key, x, err)
		}
		lsn, err := pglogrepl.ParseLSN(b)
		if err != nil {
			return nil, fmt.Errorf("read %s/%s: base of xid %s: %w", Bucket, s.key, x, err)
		}
		s.m[uint32(xid)] = uint64(lsn)
	}
	return s, nil
}

// Base is the base xid was published with, if it spilled before.
func (s *Spills) Base(xid uint32) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[xid]
	return b, ok
}

// Spill records base for xid, and returns once it is stored.
func (s *Spills) Spill(ctx context.Context, xid uint32, base uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[xid] = base
	if len(s.m) > SpillsKept {
		bases := make([]uint64, 0, len(s.m))
		for _, b := range s.m {
			bases = append(bases, b)
		}
		slices.Sort(bases)
		cut := bases[len(bases)-SpillsKept]
		for x, b := range s.m {
			if b < cut {
				delete(s.m, x)
			}
		}
	}
	raw := make(map[string]string, len(s.m))
	for x, b := range s.m {
		raw[strconv.FormatUint(uint64(x), 10)] = pglogrepl.LSN(b).String()
	}
	v, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, s.key, v); err != nil {
		return fmt.Errorf("write %s/%s: %w", Bucket, s.key, err)
	}
	return nil
}
