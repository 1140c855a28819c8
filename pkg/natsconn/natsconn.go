// Package natsconn holds what redms-capture and redms-loader both do with
// their NATS connection on a cluster: tell an unanswered request from an
// answered error, and move to another server when the one they are on has
// been cut off from the cluster (docs/DESIGN.md §9). A node cut off keeps
// its clients' TCP connections open but reaches no stream or consumer
// leader, so a client that waits on it waits for the network.
package natsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/service"
)

// Unanswered reports whether err says JetStream did not answer (no
// responders, a request or PubAck timeout), rather than answered with an
// error (a full stream, a wrong sequence, a missing key).
func Unanswered(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded)
}

// MoveServer reconnects nc to another of its servers (those configured and
// those the cluster announced) after err, an unanswered request: the
// server it is on may be cut off. It does nothing while nc is not
// connected (the client is reconnecting already) or knows one server only.
func MoveServer(nc *nats.Conn, log *slog.Logger, err error) {
	if nc == nil || !nc.IsConnected() || len(nc.Servers()) < 2 {
		return
	}
	log.Warn("JetStream does not answer through this server: reconnecting to another", "url", nc.ConnectedUrl(), "err", err)
	if err := nc.ForceReconnect(); err != nil {
		log.Warn("reconnect to another server", "err", err)
	}
}

// readyProbe is the key OpenKeyValue reads to see that a bucket answers;
// it is never written.
const readyProbe = "redms-ready-probe"

// readyWait bounds how long OpenKeyValue waits for the cluster, tryWait
// each request it makes meanwhile.
const (
	readyWait = 30 * time.Second
	tryWait   = 2 * time.Second
)

// errNoPeers is JetStream's "no suitable peers for placement": a bucket
// of more replicas than the servers the cluster sees online, as while a
// node restarts (nats-server's JSClusterNoPeersErrF).
const errNoPeers jetstream.ErrorCode = 10005

// errClusterUnavailable is JetStream's "system temporarily unavailable":
// the meta group has no leader, as while most of the cluster is down
// (nats-server's JSClusterNotAvailErr).
const errClusterUnavailable jetstream.ErrorCode = 10008

// OpenKeyValue creates the bucket cfg describes or updates it to cfg, and
// returns once the bucket answers both its stream leader (writes) and a
// read. On a cluster a bucket just created has no leader for a moment, and
// a request then finds no responders (1 in 30 fresh 3-replica buckets
// here, and a CI failure of the loader's first snapshot request); while a
// node is offline a 3-replica bucket cannot be placed, and while most are
// the cluster has no meta leader and answers "temporarily unavailable".
// All are waited out, for up to readyWait; any other error is returned at once.
func OpenKeyValue(ctx context.Context, js jetstream.KeyValueManager, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	var kv jetstream.KeyValue
	// Each try is bounded on its own: a request waits for its context's
	// deadline when nothing answers.
	err := service.Retry(ctx, service.Backoff{Min: 50 * time.Millisecond, Max: 50 * time.Millisecond}, service.Bounded(tryWait, func(ctx context.Context) error {
		if kv == nil {
			created, err := js.CreateOrUpdateKeyValue(ctx, cfg)
			var api *jetstream.APIError
			switch {
			case err == nil:
				kv = created
			case Unanswered(err) || (errors.As(err, &api) && (api.ErrorCode == errNoPeers || api.ErrorCode == errClusterUnavailable)):
				return err
			default:
				return service.Permanent(err)
			}
		}
		_, err := kv.Status(ctx)
		if err == nil {
			_, err = kv.Get(ctx, readyProbe)
		}
		if Unanswered(err) {
			return err
		}
		return nil
	}), nil)
	if err != nil {
		return nil, fmt.Errorf("open kv bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}
