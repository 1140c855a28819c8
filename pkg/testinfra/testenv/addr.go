package testenv

import (
	"net"
	"testing"
)

// FreeAddr returns a 127.0.0.1:port that was free a moment ago, for a
// process the test is about to start (a metrics or listen address).
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}
