// Package redmsv1 is the Go code generated from proto/redms/v1/*.proto: the
// typed change record (Change, Column, Op) and the loader's KV records
// (ParkedTable). Do not edit the *.pb.go files; change the
// .proto files and run `make proto` (CI runs `make proto-check`).
package redmsv1
