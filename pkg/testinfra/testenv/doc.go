// Package testenv is the one test harness of redms (as nats.go keeps one
// jetstream/test/helper_test.go): it starts the real servers tests need —
// an ephemeral Postgres cluster, embedded NATS JetStream, an S3-compatible
// server and a TCP proxy the test can cut — each on its own free port and
// temp dir, stopped and removed with t.Cleanup; it builds the service
// binaries (Build, once per test binary in TestMain), runs them as
// processes (StartProcess: a locked log, SIGTERM then SIGKILL, SIGSTOP and
// SIGCONT, /readyz), scrapes their /metrics (Scrape) and waits for
// conditions (Eventually).
//
// A server that cannot be started fails the test with a message saying how
// to get it; nothing is skipped. The cores live in pkg/testinfra/pgcluster,
// natslocal, s3local, tcpproxy, proc and scrape (no testing import, so
// redms-devstack can use them); this package only adapts them to
// testing.TB.
package testenv
