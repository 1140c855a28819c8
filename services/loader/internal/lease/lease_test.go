package lease

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

func TestTopIsStableAndSpreads(t *testing.T) {
	replicas := []string{"a", "b", "c"}
	counts := map[string]int{}
	for i := range 300 {
		key := fmt.Sprintf("redms-db-public-t%d", i)
		top := Top(key, replicas)
		if again := Top(key, []string{"c", "a", "b"}); again != top {
			t.Fatalf("Top(%s) depends on order: %s vs %s", key, top, again)
		}
		counts[top]++
		// Removing a replica moves only its own keys.
		var rest []string
		for _, r := range replicas {
			if r != "b" {
				rest = append(rest, r)
			}
		}
		if top != "b" && Top(key, rest) != top {
			t.Fatalf("removing b moved %s from %s to %s", key, top, Top(key, rest))
		}
	}
	for _, r := range replicas {
		if counts[r] < 60 {
			t.Fatalf("replica %s ranks top for only %d of 300 keys: %v", r, counts[r], counts)
		}
	}
	if Top("k", nil) != "" {
		t.Fatalf("Top of no replicas = %q, want empty", Top("k", nil))
	}
}

func TestLeaseLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := testenv.StartNATS(t)
	_, js := n.Connect(t)
	ttl := 2 * time.Second
	a, err := Open(ctx, js, "a", ttl, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, js, "b", ttl, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, js, "bad~id", ttl, 1); err == nil {
		t.Fatal("Open accepted replica id with '~'")
	}
	for _, s := range []*Store{a, b} {
		if err := s.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	v, err := a.Look(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(v.Live) != "[a b]" || len(v.Held) != 0 {
		t.Fatalf("Look = %+v, want live [a b] and nothing held", v)
	}

	const key = "redms-db-public-t"
	rev, ok, err := a.Acquire(ctx, key)
	if err != nil || !ok {
		t.Fatalf("a.Acquire = %v, %v", ok, err)
	}
	if _, ok, err := b.Acquire(ctx, key); err != nil || ok {
		t.Fatalf("b.Acquire of a held lease = %v, %v; want false, nil", ok, err)
	}
	if owner, err := b.Owner(ctx, key); err != nil || owner != "a" {
		t.Fatalf("Owner = %q, %v; want a", owner, err)
	}
	rev, err = a.Renew(ctx, key, rev)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, key, rev); err != nil {
		t.Fatal(err)
	}
	brev, ok, err := b.Acquire(ctx, key)
	if err != nil || !ok {
		t.Fatalf("b.Acquire after release = %v, %v", ok, err)
	}
	if _, err := a.Renew(ctx, key, rev); !errors.Is(err, ErrLost) {
		t.Fatalf("a.Renew after b took it = %v, want ErrLost", err)
	}

	// b stops renewing: its lease and heartbeat expire, and a can take over.
	deadline := time.Now().Add(20 * ttl)
	for {
		v, err := a.Look(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		if !v.Held[key] && fmt.Sprint(v.Live) == "[a]" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b's lease never expired: %+v", v)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(ttl / 4):
		}
	}
	if _, ok, err := a.Acquire(ctx, key); err != nil || !ok {
		t.Fatalf("a.Acquire after expiry = %v, %v", ok, err)
	}
	if _, err := b.Renew(ctx, key, brev); !errors.Is(err, ErrLost) {
		t.Fatalf("b.Renew after expiry = %v, want ErrLost", err)
	}
	if err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
}
