// Package stage writes a window's rows as gzipped CSV objects plus a Redshift
// manifest in S3, the form both warehouse dialects load from.
//
// CSV: RFC 4180, comma separated, LF between records. Every non-NULL value is
// quoted ("" inside doubled), so the empty string is "" and never confused
// with NULL. NULL is written unquoted as a marker chosen per file: "~N", or if
// some value of the file equals it, "~N1", "~N2", … — the first that no value
// equals. COPY is told the marker (NULL AS), so NULL, ”, '\N', 'NULL', a lone
// backslash and every other string survive distinctly, whatever the COPY
// dialect does with quoted fields. The marker holds no backslash or quote, so
// it reads the same as a literal in both dialects.
//
// A file is split into parts of about PartBytes of uncompressed CSV; each part
// is a whole gzip stream. Object keys:
//
//	<prefix><db>/<schema>/<table>/<firstSeq>-<lastSeq>/<segment>-<kind>[-<colset hash>]/part-00000.csv.gz
//	<prefix><db>/<schema>/<table>/<firstSeq>-<lastSeq>/<segment>-<kind>[-<colset hash>]/manifest
//
// with db, schema and table escaped as subject tokens and the sequences those
// of the whole window, so a retried window overwrites its own objects. The
// manifest is {"entries":[{"url":"s3://bucket/key","mandatory":true,
// "meta":{"content_length":N}}]}. Objects are deleted after the window
// commits unless the operator keeps them; a crash between commit and delete
// leaves them behind, so give the prefix an S3 lifecycle rule.
package stage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/klauspost/compress/gzip"

	"github.com/redms/redms/pkg/subject"
)

// Value is one CSV field.
type Value struct {
	Text string
	Null bool
}

// File is a staged CSV file held in memory as gzipped parts.
type File struct {
	NullMarker string
	Parts      [][]byte // each a complete gzip stream
	Rows       int
	CSVBytes   int64 // uncompressed
}

// Bytes is the compressed size of all parts.
func (f *File) Bytes() int64 {
	var n int64
	for _, p := range f.Parts {
		n += int64(len(p))
	}
	return n
}

const baseMarker = "~N"

// NullMarker returns the shortest marker in "~N", "~N1", "~N2", … that no
// value of rows equals.
func NullMarker(rows [][]Value) string {
	used := map[string]bool{}
	for _, r := range rows {
		for _, v := range r {
			if !v.Null && strings.HasPrefix(v.Text, baseMarker) {
				used[v.Text] = true
			}
		}
	}
	m := baseMarker
	for i := 1; used[m]; i++ {
		m = baseMarker + strconv.Itoa(i)
	}
	return m
}

// Encode writes rows as CSV split into gzipped parts of about partBytes
// uncompressed bytes (partBytes <= 0: one part).
func Encode(rows [][]Value, partBytes int64) (File, error) {
	f := File{NullMarker: NullMarker(rows), Rows: len(rows)}
	var part bytes.Buffer
	zw := gzip.NewWriter(&part)
	var line []byte
	var inPart int64
	flush := func() error {
		if err := zw.Close(); err != nil {
			return fmt.Errorf("close gzip part: %w", err)
		}
		f.Parts = append(f.Parts, bytes.Clone(part.Bytes()))
		part.Reset()
		zw.Reset(&part)
		inPart = 0
		return nil
	}
	for _, r := range rows {
		line = AppendRecord(line[:0], r, f.NullMarker)
		if _, err := zw.Write(line); err != nil {
			return File{}, fmt.Errorf("write gzip part: %w", err)
		}
		inPart += int64(len(line))
		f.CSVBytes += int64(len(line))
		if partBytes > 0 && inPart >= partBytes {
			if err := flush(); err != nil {
				return File{}, err
			}
		}
	}
	if inPart > 0 || len(f.Parts) == 0 {
		if err := flush(); err != nil {
			return File{}, err
		}
	}
	return f, nil
}

// AppendRecord appends one CSV record (with its LF) to dst.
func AppendRecord(dst []byte, r []Value, nullMarker string) []byte {
	for i, v := range r {
		if i > 0 {
			dst = append(dst, ',')
		}
		if v.Null {
			dst = append(dst, nullMarker...)
			continue
		}
		dst = append(dst, '"')
		for j := 0; j < len(v.Text); j++ {
			if v.Text[j] == '"' {
				dst = append(dst, '"', '"')
			} else {
				dst = append(dst, v.Text[j])
			}
		}
		dst = append(dst, '"')
	}
	return append(dst, '\n')
}

// CSV returns the uncompressed CSV of all parts, in order.
func (f *File) CSV() io.Reader {
	readers := make([]io.Reader, len(f.Parts))
	for i, p := range f.Parts {
		readers[i] = &lazyGunzip{src: p}
	}
	return io.MultiReader(readers...)
}

type lazyGunzip struct {
	src []byte
	zr  *gzip.Reader
}

func (l *lazyGunzip) Read(p []byte) (int, error) {
	if l.zr == nil {
		zr, err := gzip.NewReader(bytes.NewReader(l.src))
		if err != nil {
			return 0, fmt.Errorf("open gzip part: %w", err)
		}
		l.zr = zr
	}
	return l.zr.Read(p)
}

// Dir is the key prefix of one staged file of a window (ends in "/").
func Dir(prefix string, t subject.Table, firstSeq, lastSeq uint64, segment int, kind string, columns []string) string {
	var b strings.Builder
	b.WriteString(prefix)
	fmt.Fprintf(&b, "%s/%s/%s/%d-%d/%d-%s", subject.EscapeToken(t.DB), subject.EscapeToken(t.Schema), subject.EscapeToken(t.Name),
		firstSeq, lastSeq, segment, kind)
	if len(columns) > 0 {
		h := sha256.Sum256([]byte(strings.Join(columns, "\x00")))
		b.WriteString("-")
		b.WriteString(hex.EncodeToString(h[:4]))
	}
	b.WriteString("/")
	return b.String()
}

// PartKey is the key of part i under dir.
func PartKey(dir string, i int) string { return fmt.Sprintf("%spart-%05d.csv.gz", dir, i) }

// ManifestKey is the manifest's key under dir.
func ManifestKey(dir string) string { return dir + "manifest" }

type manifest struct {
	Entries []manifestEntry `json:"entries"`
}

type manifestEntry struct {
	URL       string       `json:"url"`
	Mandatory bool         `json:"mandatory"`
	Meta      manifestMeta `json:"meta"`
}

type manifestMeta struct {
	ContentLength int64 `json:"content_length"`
}

// Manifest renders the Redshift manifest of a file's parts under dir.
func Manifest(bucket, dir string, f *File) []byte {
	m := manifest{Entries: make([]manifestEntry, len(f.Parts))}
	for i, p := range f.Parts {
		m.Entries[i] = manifestEntry{
			URL:       "s3://" + bucket + "/" + PartKey(dir, i),
			Mandatory: true,
			Meta:      manifestMeta{ContentLength: int64(len(p))},
		}
	}
	b, _ := json.Marshal(m) // plain structs: cannot fail
	return b
}

// Store puts staged files into a bucket.
type Store struct {
	Client *s3.Client
	Bucket string
}

// Put uploads a file's parts and manifest under dir and returns the keys
// written and the manifest's s3:// URL.
func (s *Store) Put(ctx context.Context, dir string, f *File) ([]string, string, error) {
	keys := make([]string, 0, len(f.Parts)+1)
	for i, p := range f.Parts {
		key := PartKey(dir, i)
		if err := s.put(ctx, key, p, "application/gzip"); err != nil {
			return keys, "", err
		}
		keys = append(keys, key)
	}
	mk := ManifestKey(dir)
	if err := s.put(ctx, mk, Manifest(s.Bucket, dir, f), "application/json"); err != nil {
		return keys, "", err
	}
	keys = append(keys, mk)
	return keys, "s3://" + s.Bucket + "/" + mk, nil
}

func (s *Store) put(ctx context.Context, key string, body []byte, contentType string) error {
	_, err := s.Client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.Bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String(contentType),
	})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", s.Bucket, key, err)
	}
	return nil
}

// Delete removes objects, 1000 keys a request.
func (s *Store) Delete(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		objs := make([]types.ObjectIdentifier, n)
		for i, k := range keys[:n] {
			objs[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := s.Client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.Bucket),
			Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return fmt.Errorf("delete staged objects from s3://%s: %w", s.Bucket, err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("delete s3://%s/%s: %s", s.Bucket, aws.ToString(e.Key), aws.ToString(e.Message))
		}
		keys = keys[n:]
	}
	return nil
}
