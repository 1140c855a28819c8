// Package snapshot records the loader's snapshot requests in the KV bucket
// REDMS_SNAPSHOT_REQUESTS (docs/CONTRACTS.md, pkg/snaprequest): the loader
// asks for a snapshot of a table when changes of it arrived that cannot be
// applied (an UPDATE or DELETE without key or old row, docs/DESIGN.md §4);
// capture performs the requests (§7). A request merges into a pending one
// (an operator's or redms-verify's keeps its id, so whoever waits for it
// still sees it done); the key of a table is subject.KVKey(table).
package snapshot

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/snaprequest"
	"github.com/redms/redms/pkg/subject"
)

// Store writes snapshot requests; it opens (creating) the bucket on first
// use, so that a loader whose tables never need one does not need it.
type Store struct {
	js       jetstream.JetStream
	replica  string
	replicas int

	mu sync.Mutex
	kv jetstream.KeyValue
}

// New returns a store writing as replica into a bucket of replicas
// replicas (the stream's).
func New(js jetstream.JetStream, replica string, replicas int) *Store {
	return &Store{js: js, replica: replica, replicas: max(replicas, 1)}
}

func (s *Store) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv != nil {
		return s.kv, nil
	}
	kv, err := snaprequest.OpenRequests(ctx, s.js, s.replicas)
	if err != nil {
		return nil, err
	}
	s.kv = kv
	return kv, nil
}

// Request records that t needs a whole-table snapshot because of the
// changes from firstLSN to lastLSN. A request already pending keeps its
// first LSN, its ids and its reasons.
func (s *Store) Request(ctx context.Context, t subject.Table, reason, firstLSN, lastLSN string) error {
	kv, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	return snaprequest.Put(ctx, kv, subject.KVKey(t), snaprequest.Request{
		Table: t.String(), Reason: reason, FirstLSN: firstLSN, LastLSN: lastLSN,
		RequestedBy: s.replica, RequestedAt: time.Now().UTC(),
	})
}
