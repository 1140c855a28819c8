// Package pkg holds nothing itself. Its top-level subpackages are what
// redms-capture, redms-loader and the other binaries run in production
// (testdecoding, subject, walheader, typemap, tablekeys, service, redmsv1);
// pkg/testinfra holds the real servers tests start (Postgres, JetStream, S3,
// a TCP proxy), the service processes they run (proc, scrape, stackenv) and
// their testing.TB wrappers (testenv); pkg/demo holds the demo's workload
// generator and row-by-row compare.
package pkg
