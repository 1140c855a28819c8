package s3local

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// client talks to endpoint with the server's credentials; opts adjust the
// client (e.g. no retries).
func client(endpoint string, opts ...func(*s3.Options)) *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
	}, opts...)
}

// start runs a server with buckets for the test and closes it at the end,
// reporting a failed close.
func start(ctx context.Context, t *testing.T, buckets ...string) *Server {
	t.Helper()
	s, err := Start(ctx, Options{Buckets: buckets})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestPutGetListDeleteOverHTTP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := start(ctx, t, "stage")
	if !strings.HasPrefix(s.Endpoint(), "http://127.0.0.1:") {
		t.Fatalf("Endpoint = %q", s.Endpoint())
	}
	c := client(s.Endpoint())

	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	_, _ = w.Write([]byte("1,\"a\"\n2,\\N\n"))
	_ = w.Close()
	for _, key := range []string{"redms/public.t/0001.csv.gz", "redms/public.t/0002.csv.gz", "other/x"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String("stage"), Key: aws.String(key), Body: bytes.NewReader(gz.Bytes()),
		}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("stage"), Key: aws.String("redms/public.t/0001.csv.gz")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if !bytes.Equal(body, gz.Bytes()) {
		t.Fatalf("get returned %d bytes, want the %d put", len(body), gz.Len())
	}

	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("stage"), Prefix: aws.String("redms/")})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.Contents); n != 2 {
		t.Fatalf("list redms/ = %d objects, want 2", n)
	}

	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("stage"), Key: aws.String("redms/public.t/0001.csv.gz")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("stage"), Key: aws.String("redms/public.t/0001.csv.gz")})
	var noKey *types.NoSuchKey
	if !errors.As(err, &noKey) {
		t.Fatalf("get deleted object: err = %v, want NoSuchKey", err)
	}

	// Unknown buckets are not created on the fly.
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("nope"), Key: aws.String("k"), Body: strings.NewReader("x")}); err == nil {
		t.Fatal("put into a bucket that was never created succeeded")
	}
}

func TestMultipartUpload(t *testing.T) {
	ctx := context.Background()
	s := start(ctx, t, "b")
	c := client(s.Endpoint())
	const part = 5 << 20 // S3's minimum part size except for the last
	data := bytes.Repeat([]byte("0123456789abcdef"), (11<<20)/16)
	mp, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String("big")})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for i, off := int32(1), 0; off < len(data); i, off = i+1, off+part {
		end := min(off+part, len(data))
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String("b"), Key: aws.String("big"), UploadId: mp.UploadId,
			PartNumber: aws.Int32(i), Body: bytes.NewReader(data[off:end]),
		})
		if err != nil {
			t.Fatalf("upload part %d: %v", i, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(i)})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String("b"), Key: aws.String("big"), UploadId: mp.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		t.Fatalf("complete multipart upload: %v", err)
	}
	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("big")})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Body.Close()
	body, _ := io.ReadAll(got.Body)
	if !bytes.Equal(body, data) {
		t.Fatalf("multipart object is %d bytes, want %d", len(body), len(data))
	}
}

func TestCloseStopsServing(t *testing.T) {
	ctx := context.Background()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBucket("b"); err == nil {
		t.Fatal("creating an existing bucket succeeded")
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(s.Endpoint() + "/b"); err == nil {
		resp.Body.Close()
		t.Fatal("server still answers after Close")
	}
}

// FailFor answers 500 and StallFor holds requests, each for its duration;
// then the server serves again, objects intact.
func TestFailForAndStallFor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := start(ctx, t, "stage")
	c := client(s.Endpoint(), func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	put := func(ctx context.Context, key string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("stage"), Key: aws.String(key), Body: strings.NewReader("x")})
		return err
	}
	if err := put(ctx, "a"); err != nil {
		t.Fatal(err)
	}

	s.FailFor(time.Second)
	var re interface{ HTTPStatusCode() int }
	if err := put(ctx, "b"); !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusInternalServerError {
		t.Fatalf("put while failing: %v, want HTTP 500", err)
	}
	time.Sleep(1100 * time.Millisecond)
	if err := put(ctx, "b"); err != nil {
		t.Fatalf("put after the failure ended: %v", err)
	}

	s.StallFor(time.Hour)
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	err := put(short, "c")
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("put while stalled: %v, want the client's deadline to pass", err)
	}
	s.StallFor(0)
	if err := put(ctx, "c"); err != nil {
		t.Fatalf("put after the stall ended: %v", err)
	}
	if failed, stalled := s.Injected(); failed != 1 || stalled != 1 {
		t.Errorf("Injected() = %d failed, %d stalled; want 1 and 1", failed, stalled)
	}
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("stage")})
	if err != nil || aws.ToInt32(out.KeyCount) != 3 {
		t.Fatalf("list after the faults: %v objects, %v; want a, b, c", aws.ToInt32(out.KeyCount), err)
	}
}
