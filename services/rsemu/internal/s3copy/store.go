// Package s3copy implements Redshift's COPY … FROM 's3://…' CSV: it finds
// the objects (a key prefix or a manifest), decompresses them, parses the
// CSV and checks every value against its column's Redshift type, giving
// Redshift's load error codes, and encodes the good rows as Postgres CSV.
package s3copy

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/redms/redms/services/rsemu/internal/rserr"
	"github.com/redms/redms/services/rsemu/internal/translate"
)

// Config says where s3:// URLs are read from.
type Config struct {
	Endpoint        string // e.g. http://127.0.0.1:9000; empty = AWS
	Region          string
	AccessKeyID     string // used unless the COPY names its own keys
	SecretAccessKey string
}

// Store reads COPY sources.
type Store struct {
	cfg Config
}

// File is one object to load, decompressed.
type File struct {
	URL  string
	Data []byte
}

// NewStore returns a Store for cfg.
func NewStore(cfg Config) (*Store, error) {
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return &Store{cfg: cfg}, nil
}

func (st *Store) client(a translate.CopyAuth) *s3.Client {
	opts := s3.Options{Region: st.cfg.Region, UsePathStyle: true}
	if st.cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(st.cfg.Endpoint)
	}
	switch {
	case a.AccessKeyID != "":
		opts.Credentials = credentials.NewStaticCredentialsProvider(a.AccessKeyID, a.SecretAccessKey, a.SessionToken)
	case st.cfg.AccessKeyID != "":
		opts.Credentials = credentials.NewStaticCredentialsProvider(st.cfg.AccessKeyID, st.cfg.SecretAccessKey, "")
	default:
		opts.Credentials = aws.AnonymousCredentials{}
	}
	return s3.New(opts)
}

func loadErr(format string, args ...any) error {
	return rserr.New(rserr.InternalError, format, args...)
}

// splitURL splits s3://bucket/key.
func splitURL(u string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(u, "s3://")
	if !ok {
		return "", "", loadErr("Invalid S3 URL %q: must start with s3://", u)
	}
	bucket, key, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", loadErr("Invalid S3 URL %q: no bucket", u)
	}
	return bucket, key, nil
}

// manifest is Redshift's COPY manifest.
type manifest struct {
	Entries []struct {
		URL       string `json:"url"`
		Mandatory bool   `json:"mandatory"`
	} `json:"entries"`
}

// Files returns the objects c loads, in order, decompressed when c says GZIP.
func (st *Store) Files(ctx context.Context, c *translate.CopyStmt) ([]File, error) {
	cl := st.client(c.Auth)
	bucket, key, err := splitURL(c.From)
	if err != nil {
		return nil, err
	}
	var urls []string
	var optional map[string]bool
	if c.Manifest {
		body, err := get(ctx, cl, bucket, key)
		if err != nil {
			if isNotFound(err) {
				return nil, loadErr("Problem reading manifest file - S3ServiceException:The specified key does not exist.,Status 404,Error NoSuchKey,Rid ,CanRetry 1 (%s)", c.From)
			}
			return nil, loadErr("Problem reading manifest file %s: %v", c.From, err)
		}
		var m manifest
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&m); err != nil {
			return nil, loadErr("Manifest file is not in correct format: %v", err)
		}
		optional = map[string]bool{}
		for _, e := range m.Entries {
			if _, _, err := splitURL(e.URL); err != nil {
				return nil, loadErr("Manifest file is not in correct format: entry url %q is not an s3:// URL", e.URL)
			}
			urls = append(urls, e.URL)
			optional[e.URL] = !e.Mandatory
		}
	} else {
		p := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(key)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				if isNotFound(err) {
					break
				}
				return nil, loadErr("S3ServiceException: list s3://%s/%s: %v", bucket, key, err)
			}
			for _, o := range page.Contents {
				k := aws.ToString(o.Key)
				if strings.HasSuffix(k, "/") {
					continue
				}
				urls = append(urls, "s3://"+bucket+"/"+k)
			}
		}
		if len(urls) == 0 {
			return nil, loadErr("The specified S3 prefix '%s' does not exist", key)
		}
	}
	var files []File
	for _, u := range urls {
		b, k, _ := splitURL(u)
		body, err := get(ctx, cl, b, k)
		if err != nil {
			if isNotFound(err) && optional[u] {
				continue
			}
			if isNotFound(err) {
				return nil, loadErr("Manifest entry %s is mandatory but does not exist: S3ServiceException:The specified key does not exist.,Status 404,Error NoSuchKey", u)
			}
			return nil, loadErr("S3ServiceException: get %s: %v", u, err)
		}
		if c.Gzip {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				return nil, loadErr("Invalid gzip file %s: %v", u, err)
			}
			body, err = io.ReadAll(zr)
			if err != nil {
				return nil, loadErr("Invalid gzip file %s: %v", u, err)
			}
		}
		files = append(files, File{URL: u, Data: body})
	}
	if len(files) == 0 {
		return nil, loadErr("Manifest %s lists no file that exists: nothing to load", c.From)
	}
	return files, nil
}

func get(ctx context.Context, cl *s3.Client, bucket, key string) ([]byte, error) {
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s: %w", bucket, key, err)
	}
	return b, nil
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nsb *types.NoSuchBucket
	var nf *types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nsb) || errors.As(err, &nf)
}
