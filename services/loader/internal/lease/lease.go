// Package lease decides which loader replica owns which table, through the
// KV bucket REDMS_LOADER_LEASES whose entries expire after the lease TTL.
//
// Every replica heartbeats the key replica.<id> every TTL/3; the live
// replicas are the replica.* keys that have not expired. A table's lease is
// the key <consumer name> holding the owner's id: taken with Create (fails
// when someone holds it), renewed with Update at the last revision (fails
// when someone else took it after it expired), released with Delete at the
// last revision. Keys are subject.KVKey of the table. Which replica should own a table is decided by rendezvous
// hashing over the live replicas, so every replica computes the same answer
// and a replica's death only moves its own tables.
package lease

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/natsconn"
)

// Bucket is the KV bucket of leases and heartbeats.
const Bucket = "REDMS_LOADER_LEASES"

const replicaPrefix = "replica."

// ErrLost is returned by Renew and Release when another replica took the lease.
var ErrLost = errors.New("lease taken by another replica")

var validID = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

// ValidID reports whether id can name a replica in the bucket's keys.
func ValidID(id string) bool { return validID.MatchString(id) }

// Top returns the replica that rendezvous hashing ranks highest for key, or
// "" when there are none. Every replica computes the same answer from the
// same set, and removing a replica only moves the keys it ranked top for.
func Top(key string, replicas []string) string {
	var best string
	var bestScore uint64
	for _, r := range replicas {
		s := score(r, key)
		if best == "" || s > bestScore || (s == bestScore && r < best) {
			best, bestScore = r, s
		}
	}
	return best
}

func score(replica, key string) uint64 {
	h := sha256.New()
	h.Write([]byte(replica))
	h.Write([]byte{0})
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// Store is one replica's view of the lease bucket.
type Store struct {
	kv      jetstream.KeyValue
	replica string
	ttl     time.Duration
}

// Open creates or updates the lease bucket with the given TTL and number
// of replicas (the stream's, so a node lost loses no lease).
func Open(ctx context.Context, js jetstream.JetStream, replica string, ttl time.Duration, replicas int) (*Store, error) {
	if !ValidID(replica) {
		return nil, fmt.Errorf("replica id %q: only letters, digits and -/_=. are allowed", replica)
	}
	kv, err := natsconn.OpenKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "redms-loader table leases and replica heartbeats",
		TTL:         ttl,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, err
	}
	return &Store{kv: kv, replica: replica, ttl: ttl}, nil
}

// Replica is this replica's id.
func (s *Store) Replica() string { return s.replica }

// TTL is the lease time to live.
func (s *Store) TTL() time.Duration { return s.ttl }

// Heartbeat marks this replica live for one more TTL.
func (s *Store) Heartbeat(ctx context.Context) error {
	if _, err := s.kv.Put(ctx, replicaPrefix+s.replica, []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("heartbeat %s: %w", s.replica, err)
	}
	return nil
}

// Leave removes this replica's heartbeat so the others take its tables now.
func (s *Store) Leave(ctx context.Context) error {
	if err := s.kv.Delete(ctx, replicaPrefix+s.replica); err != nil {
		return fmt.Errorf("remove heartbeat %s: %w", s.replica, err)
	}
	return nil
}

// View is the state of the bucket at one moment.
type View struct {
	Live []string        // replica ids with a live heartbeat, sorted
	Held map[string]bool // lease keys someone holds
}

// Look lists the live replicas and the held leases.
func (s *Store) Look(ctx context.Context) (View, error) {
	v := View{Held: map[string]bool{}}
	keys, err := s.kv.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return v, fmt.Errorf("list leases: %w", err)
	}
	for _, k := range keys {
		if id, ok := strings.CutPrefix(k, replicaPrefix); ok {
			v.Live = append(v.Live, id)
			continue
		}
		v.Held[k] = true
	}
	sort.Strings(v.Live)
	return v, nil
}

// Acquire takes the lease of key if nobody holds it. It returns the
// revision to renew with, or ok false when another replica holds it.
func (s *Store) Acquire(ctx context.Context, key string) (rev uint64, ok bool, err error) {
	rev, err = s.kv.Create(ctx, key, []byte(s.replica))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("acquire lease %s: %w", key, err)
	}
	return rev, true, nil
}

// Renew extends the lease of key held at rev; ErrLost when someone else
// took it meanwhile.
func (s *Store) Renew(ctx context.Context, key string, rev uint64) (uint64, error) {
	next, err := s.kv.Update(ctx, key, []byte(s.replica), rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("renew lease %s: %w", key, ErrLost)
	}
	if err != nil {
		return 0, fmt.Errorf("renew lease %s: %w", key, err)
	}
	return next, nil
}

// Release gives up the lease of key held at rev.
func (s *Store) Release(ctx context.Context, key string, rev uint64) error {
	err := s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("release lease %s: %w", key, ErrLost)
	}
	if err != nil {
		return fmt.Errorf("release lease %s: %w", key, err)
	}
	return nil
}

// Owner returns who holds the lease of key, "" when nobody does.
func (s *Store) Owner(ctx context.Context, key string) (string, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read lease %s: %w", key, err)
	}
	return string(e.Value()), nil
}

// Holds reports whether this replica holds the lease of key, renewed at
// revision rev or since: false when the lease expired, was released, or
// another replica holds it. (Two processes with one replica id cannot be
// told apart; ids must be unique.)
func (s *Store) Holds(ctx context.Context, key string, rev uint64) (bool, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read lease %s: %w", key, err)
	}
	return string(e.Value()) == s.replica && e.Revision() >= rev, nil
}
