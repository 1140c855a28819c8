package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redms/redms/pkg/testinfra/s3local"
)

// S3 is an S3-compatible server over real HTTP on 127.0.0.1, path-style,
// with static credentials, objects in memory.
type S3 struct {
	s *s3local.Server
}

// StartS3 starts a server and closes it when the test ends.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	s, err := s3local.Start(context.Background(), s3local.Options{})
	if err != nil {
		t.Fatalf("start s3 server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("%v", err)
		}
	})
	return &S3{s: s}
}

// Server is the underlying server.
func (s *S3) Server() *s3local.Server { return s.s }

// Endpoint is the base URL, http://127.0.0.1:PORT.
func (s *S3) Endpoint() string { return s.s.Endpoint() }

// Region is the region clients sign for.
func (s *S3) Region() string { return s3local.Region }

// AccessKeyID is the static access key clients sign with.
func (s *S3) AccessKeyID() string { return s3local.AccessKeyID }

// SecretAccessKey is the static secret clients sign with.
func (s *S3) SecretAccessKey() string { return s3local.SecretAccessKey }

// Client is an aws-sdk-go-v2 client pointed at the server: path-style,
// static credentials, nothing read from the environment.
func (s *S3) Client(t testing.TB) *s3.Client {
	t.Helper()
	return s3.New(s3.Options{
		Region:       s.Region(),
		BaseEndpoint: aws.String(s.Endpoint()),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKeyID(), s.SecretAccessKey(), ""),
	})
}

// CreateBucket creates a bucket and fails the test on error.
func (s *S3) CreateBucket(t testing.TB, name string) {
	t.Helper()
	if err := s.s.CreateBucket(name); err != nil {
		t.Fatalf("%v", err)
	}
}

// FailFor makes every request within d answer 500 InternalError.
func (s *S3) FailFor(d time.Duration) { s.s.FailFor(d) }

// StallFor holds every request within d until d has passed.
func (s *S3) StallFor(d time.Duration) { s.s.StallFor(d) }

// Injected returns how many requests FailFor failed and StallFor held.
func (s *S3) Injected() (failed, stalled int) { return s.s.Injected() }
