package publish

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestUnanswered(t *testing.T) {
	cases := map[error]bool{
		nats.ErrNoResponders:                       true,
		jetstream.ErrNoStreamResponse:              true,
		jetstream.ErrAsyncPublishTimeout:           true,
		fmt.Errorf("x: %w", nats.ErrTimeout):       true,
		&jetstream.APIError{ErrorCode: 10158}:      true,
		&jetstream.APIError{ErrorCode: 10077}:      false, // maximum messages exceeded: the stream answered
		errors.New("nats: server is disconnected"): false,
	}
	for err, want := range cases {
		if got := unanswered(err); got != want {
			t.Errorf("unanswered(%v) = %v, want %v", err, got, want)
		}
	}
}
