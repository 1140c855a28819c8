// Package park keeps the parked tables in the KV bucket REDMS_LOADER_PARKED.
//
// A table is parked when a window of it cannot be applied (a record that
// does not parse, a warehouse error that retries did not cure). Its messages
// stay in the stream un-acked, its owner stops reading it, and the key
// subject.KVKey(table) (the consumer name with ~ written =) holds why. Deleting the key (redms-loader resume, or nats kv
// del) resumes the table: its owner watches the key.
package park

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/redms/redms/pkg/natsconn"
	"github.com/redms/redms/pkg/redmsv1"
)

// Bucket is the KV bucket of parked tables.
const Bucket = "REDMS_LOADER_PARKED"

// Record is what the bucket holds for a parked table, stored as the
// protojson (proto field names) of redmsv1.ParkedTable.
type Record struct {
	Table    string // schema.table unquoted
	FirstLSN string
	LastLSN  string
	FirstSeq uint64
	LastSeq  uint64
	Reason   string
	Replica  string
	ParkedAt time.Time
}

var (
	marshal   = protojson.MarshalOptions{UseProtoNames: true}
	unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
)

func encode(r Record) ([]byte, error) {
	return marshal.Marshal(&redmsv1.ParkedTable{
		Table: r.Table, FirstLsn: r.FirstLSN, LastLsn: r.LastLSN, FirstSeq: r.FirstSeq, LastSeq: r.LastSeq,
		Reason: r.Reason, Replica: r.Replica, ParkedAt: r.ParkedAt.UTC().Format(time.RFC3339Nano),
	})
}

func decode(b []byte) (Record, error) {
	var p redmsv1.ParkedTable
	if err := unmarshal.Unmarshal(b, &p); err != nil {
		return Record{}, err
	}
	at, err := time.Parse(time.RFC3339Nano, p.GetParkedAt())
	if err != nil && p.GetParkedAt() != "" {
		return Record{}, err
	}
	return Record{Table: p.GetTable(), FirstLSN: p.GetFirstLsn(), LastLSN: p.GetLastLsn(), FirstSeq: p.GetFirstSeq(),
		LastSeq: p.GetLastSeq(), Reason: p.GetReason(), Replica: p.GetReplica(), ParkedAt: at}, nil
}

// Store reads and writes the parked bucket.
type Store struct {
	kv jetstream.KeyValue
}

// Open creates the bucket if it is missing, with replicas replicas (the
// stream's), and updates its replicas if it exists.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	kv, err := natsconn.OpenKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "redms-loader parked tables; delete a key to resume its table",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, err
	}
	return &Store{kv: kv}, nil
}

// Lookup opens the bucket as it is, without creating or changing it (its
// replicas are the loader's to set): a command that only reads or
// resumes uses it.
func Lookup(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("open kv bucket %s: %w", Bucket, err)
	}
	return &Store{kv: kv}, nil
}

// Park records that the table of key is parked.
func (s *Store) Park(ctx context.Context, key string, r Record) error {
	b, err := encode(r)
	if err != nil {
		return fmt.Errorf("encode parked record of %s: %w", r.Table, err)
	}
	if _, err := s.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("park %s: %w", r.Table, err)
	}
	return nil
}

// Get returns the parked record of key, ok false when it is not parked.
func (s *Store) Get(ctx context.Context, key string) (r Record, ok bool, err error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("read parked %s: %w", key, err)
	}
	r, err = decode(e.Value())
	if err != nil {
		// Someone wrote the key by hand: it is still parked.
		return Record{Reason: string(e.Value())}, true, nil
	}
	return r, true, nil
}

// Resume deletes the parked key of key; ok false when it was not parked.
func (s *Store) Resume(ctx context.Context, key string) (ok bool, err error) {
	if _, ok, err := s.Get(ctx, key); err != nil || !ok {
		return false, err
	}
	if err := s.kv.Delete(ctx, key); err != nil {
		return false, fmt.Errorf("resume %s: %w", key, err)
	}
	return true, nil
}

// Count is the number of parked tables.
func (s *Store) Count(ctx context.Context) (int, error) {
	keys, err := s.kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list parked tables: %w", err)
	}
	return len(keys), nil
}

// WaitResumed blocks until the parked key of key is gone, then returns
// nil; it returns ctx's error when ctx ends first.
func (s *Store) WaitResumed(ctx context.Context, key string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.kv.Watch(ctx, key)
	if err != nil {
		return fmt.Errorf("watch parked %s: %w", key, err)
	}
	defer func() { _ = w.Stop() }()
	parked := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("watch parked %s: watcher closed", key)
			}
			if e == nil { // the current value has been delivered
				if !parked {
					return nil
				}
				continue
			}
			parked = e.Operation() == jetstream.KeyValuePut
			if !parked {
				return nil
			}
		}
	}
}
