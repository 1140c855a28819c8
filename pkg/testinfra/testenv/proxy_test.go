package testenv

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestProxyToPostgres cuts a live Postgres connection through the proxy.
func TestProxyToPostgres(t *testing.T) {
	pg := StartPostgres(t)
	proxy := StartProxy(t, pg.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, port, _ := net.SplitHostPort(proxy.Addr())
	url := "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable&connect_timeout=5"

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("ping through a cut proxy succeeded")
	}
	if c, err := pgx.Connect(ctx, url); err == nil {
		c.Close(ctx)
		t.Fatal("connect through a cut proxy succeeded")
	}
	proxy.Restore()
	c2, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect after Restore: %v", err)
	}
	c2.Close(ctx)
}
