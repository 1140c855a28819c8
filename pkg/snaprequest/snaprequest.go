// Package snaprequest holds the records of snapshot requests and statuses
// in the KV buckets REDMS_SNAPSHOT_REQUESTS and REDMS_SNAPSHOTS
// (docs/CONTRACTS.md, docs/DESIGN.md §7), with their encoding: written by
// the loader, redms-capture snapshot and redms-verify --repair, performed
// and reported by redms-capture.
package snaprequest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/natsconn"
	"github.com/redms/redms/pkg/walheader"
)

// The KV buckets of docs/CONTRACTS.md.
const (
	RequestsBucket = "REDMS_SNAPSHOT_REQUESTS"
	StatusBucket   = "REDMS_SNAPSHOTS"
)

// Request is a pending snapshot request (written by the loader,
// redms-capture snapshot and redms-verify --repair).
type Request struct {
	Table       string    `json:"table"` // schema.table, unquoted
	Reason      string    `json:"reason"`
	FirstLSN    string    `json:"first_lsn,omitempty"`
	LastLSN     string    `json:"last_lsn,omitempty"`
	RequestedBy string    `json:"requested_by"`
	RequestedAt time.Time `json:"requested_at"`
	ID          string    `json:"id,omitempty"`
	Ranges      []Range   `json:"ranges,omitempty"`
	Where       string    `json:"where,omitempty"`
}

// Range is a key range (From, To]; a nil bound is unbounded.
type Range struct {
	From walheader.Key `json:"from"`
	To   walheader.Key `json:"to"`
}

// States of a snapshot.
const (
	StateQueued  = "queued"
	StateRunning = "running"
	StateDone    = "done"
	StateFailed  = "failed"
	StateRefused = "refused"
)

// Status is a table's latest snapshot.
type Status struct {
	ID         string        `json:"id"`
	RequestIDs []string      `json:"request_ids,omitempty"`
	Table      string        `json:"table"`
	State      string        `json:"state"`
	Reason     string        `json:"reason,omitempty"`
	Where      string        `json:"where,omitempty"`
	Ranges     []Range       `json:"ranges,omitempty"`
	Chunk      int           `json:"chunk"`
	Cursor     walheader.Key `json:"cursor"`
	// Range is the index in Ranges of the range being read (Cursor is
	// within it; nil Cursor: from its start).
	Range        int        `json:"range,omitempty"`
	RowsDone     int64      `json:"rows_done"`
	RowsEstimate int64      `json:"rows_estimate"`
	StartedAt    time.Time  `json:"started_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
	LastPos      string     `json:"last_pos,omitempty"`
	Error        string     `json:"error,omitempty"`
}

// Active reports whether the snapshot is still to be performed.
func (s Status) Active() bool { return s.State == StateQueued || s.State == StateRunning }

// OpenRequests opens the request bucket. With replicas > 0 it creates or
// updates it with that many replicas (capture and the loader, which know
// the stream's); with 0 it uses the bucket as it is and creates it with
// one replica only when it is missing (redms-capture snapshot,
// redms-verify --repair), so an operator's tool never shrinks it.
func OpenRequests(ctx context.Context, js jetstream.KeyValueManager, replicas int) (jetstream.KeyValue, error) {
	if replicas <= 0 {
		kv, err := js.KeyValue(ctx, RequestsBucket)
		if err == nil {
			return kv, nil
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("open kv bucket %s: %w", RequestsBucket, err)
		}
		replicas = 1
	}
	kv, err := natsconn.OpenKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      RequestsBucket,
		Description: "tables that need a snapshot (written by redms-loader, redms-capture snapshot and redms-verify --repair; performed by redms-capture)",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, err
	}
	return kv, nil
}

// OpenStatus opens (creating) the status bucket.
func OpenStatus(ctx context.Context, js jetstream.KeyValueManager, replicas int) (jetstream.KeyValue, error) {
	kv, err := natsconn.OpenKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      StatusBucket,
		Description: "redms-capture: each table's latest snapshot, its chunk cursor and progress (docs/CONTRACTS.md)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, err
	}
	return kv, nil
}

// Put records a request for a table, merging it into a pending one:
// reasons are joined, ids kept, and a whole-table request wins over ranges.
func Put(ctx context.Context, kv jetstream.KeyValue, key string, r Request) error {
	for range 10 {
		e, err := kv.Get(ctx, key)
		var rev uint64
		switch {
		case err == nil:
			var old Request
			if json.Unmarshal(e.Value(), &old) == nil {
				r = merge(old, r)
			}
			rev = e.Revision()
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		default:
			return fmt.Errorf("read snapshot request of %s: %w", r.Table, err)
		}
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode snapshot request of %s: %w", r.Table, err)
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, b)
		} else {
			_, err = kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return nil
		}
		var api *jetstream.APIError
		if !errors.Is(err, jetstream.ErrKeyExists) && !(errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			return fmt.Errorf("write snapshot request of %s: %w", r.Table, err)
		}
	}
	return fmt.Errorf("write snapshot request of %s: the request kept changing under us", r.Table)
}

// maxReasons bounds the reasons a pending request keeps: a table whose
// windows keep asking (each with its own count) keeps the first and the
// latest ones.
const maxReasons = 4

func merge(old, r Request) Request {
	r.Reason = joinReasons(old.Reason, r.Reason)
	switch {
	case r.ID == "":
		r.ID = old.ID
	case old.ID != "" && old.ID != r.ID:
		r.ID = old.ID + "," + r.ID
	}
	if old.FirstLSN != "" {
		r.FirstLSN = old.FirstLSN
	}
	if len(old.Ranges) == 0 || len(r.Ranges) == 0 {
		r.Ranges = nil
	} else {
		r.Ranges = append(old.Ranges, r.Ranges...)
	}
	if old.Where != r.Where {
		r.Where = "" // different filters: the whole table
	}
	return r
}

func joinReasons(old, r string) string {
	if old == "" || old == r {
		return r
	}
	parts := strings.Split(old, "; ")
	if slices.Contains(parts, r) {
		return old
	}
	if len(parts) >= maxReasons {
		parts = append(parts[:1], parts[len(parts)-maxReasons+2:]...)
	}
	return strings.Join(append(parts, r), "; ")
}

// ReadStatus lists every table's status.
func ReadStatus(ctx context.Context, kv jetstream.KeyValue) (map[string]Status, error) {
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kv.Bucket(), err)
	}
	out := map[string]Status{}
	for k := range keys.Keys() {
		if strings.HasPrefix(k, "selection.") {
			continue
		}
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s %s: %w", kv.Bucket(), k, err)
		}
		var s Status
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			return nil, fmt.Errorf("decode %s %s: %w", kv.Bucket(), k, err)
		}
		out[k] = s
	}
	return out, nil
}

// GetStatus reads the status under key; ok is false when there is none.
func GetStatus(ctx context.Context, kv jetstream.KeyValue, key string) (s Status, ok bool, err error) {
	ok, err = get(ctx, kv, key, &s)
	return s, ok, err
}

// GetRequest reads the pending request under key; ok is false when there
// is none.
func GetRequest(ctx context.Context, kv jetstream.KeyValue, key string) (r Request, ok bool, err error) {
	ok, err = get(ctx, kv, key, &r)
	return r, ok, err
}

func get(ctx context.Context, kv jetstream.KeyValue, key string, v any) (bool, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s %s: %w", kv.Bucket(), key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return false, fmt.Errorf("decode %s %s: %w", kv.Bucket(), key, err)
	}
	return true, nil
}

// PutStatus records a table's status.
func PutStatus(ctx context.Context, kv jetstream.KeyValue, key string, s Status) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode snapshot status of %s: %w", s.Table, err)
	}
	if _, err := kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("write snapshot status of %s: %w", s.Table, err)
	}
	return nil
}
