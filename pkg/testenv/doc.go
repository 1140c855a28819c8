// Package testenv starts the real servers redms tests need — an ephemeral
// Postgres cluster, embedded NATS JetStream, an S3-compatible server and a
// TCP proxy the test can cut — each on its own free port and temp dir, and
// stops and removes them with t.Cleanup.
//
// A server that cannot be started fails the test with a message saying how
// to get it; nothing is skipped. The cores live in pkg/pgcluster,
// pkg/natslocal, pkg/s3local and pkg/tcpproxy; this package only adapts them
// to testing.TB.
package testenv
