package natsconn

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestUnanswered(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nats.ErrNoResponders, true},
		{fmt.Errorf("heartbeat r1: %w", jetstream.ErrNoStreamResponse), true},
		{fmt.Errorf("publish: %w", nats.ErrTimeout), true},
		{jetstream.ErrAsyncPublishTimeout, true},
		{context.DeadlineExceeded, true},
		{&jetstream.APIError{Code: 503, ErrorCode: jetstream.JSErrCodeStreamNotFound, Description: "stream not found"}, false},
		{jetstream.ErrKeyNotFound, false},
		{fmt.Errorf("renew: %w", jetstream.ErrKeyExists), false},
	} {
		if got := Unanswered(tc.err); got != tc.want {
			t.Errorf("Unanswered(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
