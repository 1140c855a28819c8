package testenv

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestS3Client(t *testing.T) {
	srv := StartS3(t)
	srv.CreateBucket(t, "stage")
	c := srv.Client(t)
	ctx := context.Background()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("stage"), Key: aws.String("a/b.csv"), Body: strings.NewReader("1,x\n"),
	}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("stage"), Key: aws.String("a/b.csv")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	if string(b) != "1,x\n" {
		t.Fatalf("object = %q", b)
	}
	// The bucket is created through the S3 API too.
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("made-by-sdk")}); err != nil {
		t.Fatal(err)
	}
	buckets, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(buckets.Buckets); n != 2 {
		t.Fatalf("%d buckets, want 2", n)
	}
}
