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
// A window stages one file: every row of every merge step (the loader's
// staging table has a step column). A row may be shorter than the file's
// width: the missing trailing fields are NULL. A record Redshift's COPY
// would refuse for its size (over MaxRecordBytes) is the caller's to cut
// (RecordBytes says how big one is).
//
// A file is split into parts of about PartBytes of uncompressed CSV; each part
// is a whole gzip stream, compressed and uploaded in parallel. Object keys:
//
//	<prefix><db>/<schema>/<table>/<firstSeq>-<lastSeq>/part-00000.csv.gz
//	<prefix><db>/<schema>/<table>/<firstSeq>-<lastSeq>/manifest
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
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/klauspost/compress/gzip"
	"golang.org/x/sync/errgroup"

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

// parallel is how many parts are compressed, or uploaded, at once.
const parallel = 4

// Encode writes rows as CSV split into gzipped parts of about partBytes
// uncompressed bytes (partBytes <= 0: one part), every record width fields
// wide (a shorter row ends in NULLs).
func Encode(rows [][]Value, width int, partBytes int64) (File, error) {
	f := File{NullMarker: NullMarker(rows), Rows: len(rows)}
	// Cut the rows into parts by their encoded size, then compress the
	// parts in parallel.
	type span struct{ from, to int }
	var spans []span
	from, inPart := 0, int64(0)
	for i, r := range rows {
		n := int64(RecordBytes(r, width, len(f.NullMarker))) + 1
		inPart += n
		f.CSVBytes += n
		if partBytes > 0 && inPart >= partBytes {
			spans = append(spans, span{from, i + 1})
			from, inPart = i+1, 0
		}
	}
	if from < len(rows) || len(spans) == 0 {
		spans = append(spans, span{from, len(rows)})
	}
	f.Parts = make([][]byte, len(spans))
	// Each worker reuses one gzip writer: a new one allocates its tables.
	var next atomic.Int64
	var g errgroup.Group
	for range min(parallel, len(spans)) {
		g.Go(func() error {
			var part bytes.Buffer
			zw := gzip.NewWriter(&part)
			var line []byte
			for i := int(next.Add(1) - 1); i < len(spans); i = int(next.Add(1) - 1) {
				part.Reset()
				zw.Reset(&part)
				for _, r := range rows[spans[i].from:spans[i].to] {
					line = AppendRecord(line[:0], r, width, f.NullMarker)
					if _, err := zw.Write(line); err != nil {
						return fmt.Errorf("write gzip part: %w", err)
					}
				}
				if err := zw.Close(); err != nil {
					return fmt.Errorf("close gzip part: %w", err)
				}
				f.Parts[i] = bytes.Clone(part.Bytes())
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return File{}, err
	}
	return f, nil
}

// MaxRecordBytes is the largest CSV record (without its line end)
// Redshift's COPY loads: a row over 4 MB is a load error.
const MaxRecordBytes = 4 << 20

// FieldBytes is v's size in a record: quoted with quotes doubled, or the
// NULL marker.
func FieldBytes(v Value, markerBytes int) int {
	if v.Null {
		return markerBytes
	}
	return 2 + len(v.Text) + strings.Count(v.Text, `"`)
}

// MaxMarkerBytes bounds the NULL marker's length ("~N" and a number).
const MaxMarkerBytes = 8

// RecordBytes is the size of r's record, width fields wide, without its
// line end, for a NULL marker of markerBytes.
func RecordBytes(r []Value, width, markerBytes int) int {
	n := max(len(r), width) - 1
	for _, v := range r {
		n += FieldBytes(v, markerBytes)
	}
	if width > len(r) {
		n += (width - len(r)) * markerBytes
	}
	return n
}

// AppendRecord appends one CSV record of width fields (r, then NULLs) with
// its LF to dst.
func AppendRecord(dst []byte, r []Value, width int, nullMarker string) []byte {
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
	for i := len(r); i < width; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, nullMarker...)
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

// Dir is the key prefix of a window's staged file (ends in "/").
func Dir(prefix string, t subject.Table, firstSeq, lastSeq uint64) string {
	return fmt.Sprintf("%s%s/%s/%s/%d-%d/", prefix, subject.EscapeToken(t.DB), subject.EscapeToken(t.Schema), subject.EscapeToken(t.Name), firstSeq, lastSeq)
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

// Put uploads a file's parts (in parallel) and manifest under dir and
// returns the keys it may have written (to delete, even on failure) and the
// manifest's s3:// URL.
func (s *Store) Put(ctx context.Context, dir string, f *File) ([]string, string, error) {
	keys := make([]string, 0, len(f.Parts)+1)
	for i := range f.Parts {
		keys = append(keys, PartKey(dir, i))
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, p := range f.Parts {
		g.Go(func() error { return s.put(gctx, keys[i], p, "application/gzip") })
	}
	if err := g.Wait(); err != nil {
		return keys, "", err
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
