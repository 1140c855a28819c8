// Package stream creates the JetStream stream that is the pipeline's WAL, or
// checks that an existing one keeps the guarantees capture relies on. It never
// edits an existing stream.
package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Subjects is the subject filter of the WAL stream.
const Subjects = "redms.wal.>"

// Settings are the configurable parts of the stream.
type Settings struct {
	Name        string
	Replicas    int
	MaxBytes    int64
	DedupWindow time.Duration
}

// Config returns the stream configuration capture creates.
func Config(s Settings) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        s.Name,
		Description: "redms WAL: one message per source change",
		Subjects:    []string{Subjects},
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
		MaxBytes:    s.MaxBytes,
		MaxMsgs:     -1,
		MaxAge:      0,
		Duplicates:  s.DedupWindow,
		// Direct access lets `nats stream view` page a work-queue stream
		// (it refuses otherwise); reads never remove or ack anything.
		AllowDirect: true,
	}
}

// Validate returns an error naming every setting of an existing stream that
// would break the design: it must keep messages until they are acked
// (work-queue retention, no age or message limits), refuse new messages when
// full (discard new), be stored on file, and hold exactly redms.wal.>.
func Validate(have jetstream.StreamConfig) error {
	var diffs []string
	if have.Retention != jetstream.WorkQueuePolicy {
		diffs = append(diffs, fmt.Sprintf("retention is %s, want workqueue", have.Retention))
	}
	if have.Discard != jetstream.DiscardNew {
		diffs = append(diffs, fmt.Sprintf("discard policy is %s, want new", have.Discard))
	}
	if !slices.Equal(have.Subjects, []string{Subjects}) {
		diffs = append(diffs, fmt.Sprintf("subjects are %q, want [%q]", have.Subjects, Subjects))
	}
	if have.Storage != jetstream.FileStorage {
		diffs = append(diffs, fmt.Sprintf("storage is %s, want file", have.Storage))
	}
	if have.MaxAge != 0 {
		diffs = append(diffs, fmt.Sprintf("max age is %s, want unlimited", have.MaxAge))
	}
	if have.MaxMsgs > 0 {
		diffs = append(diffs, fmt.Sprintf("max messages is %d, want unlimited", have.MaxMsgs))
	}
	if have.MaxMsgsPerSubject > 0 {
		diffs = append(diffs, fmt.Sprintf("max messages per subject is %d, want unlimited", have.MaxMsgsPerSubject))
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: stream %s does not fit redms (it is never changed by capture; fix or delete it): %s",
		ErrMismatch, have.Name, strings.Join(diffs, "; "))
}

// ErrMismatch is wrapped by Validate's error.
var ErrMismatch = errors.New("existing stream differs")

// Manager is what Ensure needs from jetstream.JetStream.
type Manager interface {
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
	CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error)
}

var _ Manager = (jetstream.JetStream)(nil)

// Ensure creates the stream when it is missing and validates it otherwise.
// It returns the stream's configuration and whether it was created.
func Ensure(ctx context.Context, js Manager, s Settings) (jetstream.StreamConfig, bool, error) {
	st, err := js.Stream(ctx, s.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		created, err := js.CreateStream(ctx, Config(s))
		if err != nil {
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return Ensure(ctx, js, s)
			}
			return jetstream.StreamConfig{}, false, fmt.Errorf("create stream %s: %w", s.Name, err)
		}
		return created.CachedInfo().Config, true, nil
	}
	if err != nil {
		return jetstream.StreamConfig{}, false, fmt.Errorf("look up stream %s: %w", s.Name, err)
	}
	cfg := st.CachedInfo().Config
	return cfg, false, Validate(cfg)
}

// InflightBytes is the most bytes capture may have in flight (published,
// without a PubAck) on a stream of maxBytes (<= 0: unlimited), given the
// configured limit: at most an eighth of a byte-limited stream
// (docs/DESIGN.md §2, rule 6). Publishes stored after a rejected one
// are held by the loaders until the rejected one arrives (§2.3) and keep
// their bytes in the stream; bounded so, they can never fill it, and the
// rejected publish always finds room once the rest drains.
func InflightBytes(limit int, maxBytes int64) int {
	if maxBytes <= 0 {
		return limit
	}
	return int(min(int64(limit), max(maxBytes/8, 1)))
}
