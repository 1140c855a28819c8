package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/redms/redms/pkg/redmsv1"
	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/capture/internal/batch"
)

// dryRun writes one JSON object per change (protojson of redmsv1.Change)
// instead of publishing: exactly the messages capture would publish with
// one change per message (REDMS_BATCH_RECORDS=1), decoded back from their
// subject, headers and body, in source order.
type dryRun struct {
	w       *bufio.Writer
	batcher *batch.Batcher
}

func newDryRun(w io.Writer) *dryRun {
	return &dryRun{w: bufio.NewWriterSize(w, 64<<10), batcher: batch.New(batch.Config{Records: 1, Bytes: 1})}
}

// Run writes every chunk read from in until it is closed.
func (d *dryRun) Run(ctx context.Context, in <-chan batch.Chunk) error {
	defer d.w.Flush()
	for {
		select {
		case c, ok := <-in:
			if !ok {
				return d.flush()
			}
			d.batcher.Session(c.Session)
			if c.End {
				c.Txn.Commit(c.Commit, c.CommitTime)
			}
			for i := range c.Changes {
				d.batcher.Add(&c.Changes[i], time.Time{})
				for _, m := range d.batcher.Take() {
					line, err := changeJSON(m.Msg)
					if err != nil {
						return err
					}
					d.w.Write(line)
					d.w.WriteByte('\n')
				}
			}
			if err := d.flush(); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (d *dryRun) flush() error {
	if err := d.w.Flush(); err != nil {
		return fmt.Errorf("write dry-run output: %w", err)
	}
	return nil
}

var ops = map[testdecoding.Kind]redmsv1.Op{
	testdecoding.KindInsert:   redmsv1.Op_OP_INSERT,
	testdecoding.KindUpdate:   redmsv1.Op_OP_UPDATE,
	testdecoding.KindDelete:   redmsv1.Op_OP_DELETE,
	testdecoding.KindTruncate: redmsv1.Op_OP_TRUNCATE,
	testdecoding.KindMessage:  redmsv1.Op_OP_MESSAGE,
}

// toChange decodes a message into the change it carries.
func toChange(m *nats.Msg) (*redmsv1.Change, error) {
	rec, err := testdecoding.Parse(m.Data)
	if err != nil {
		return nil, fmt.Errorf("re-parse %s: %w", m.Header.Get(walheader.MsgID), err)
	}
	t, err := subject.Parse(m.Subject)
	if err != nil {
		return nil, fmt.Errorf("dry-run: %w", err)
	}
	meta, err := walheader.Parse(m.Header)
	if err != nil {
		return nil, fmt.Errorf("dry-run: %w", err)
	}
	c := &redmsv1.Change{
		Database:    t.DB,
		Schema:      t.Schema,
		Table:       t.Name,
		Op:          ops[rec.Kind],
		Columns:     columns(rec.Columns),
		OldKey:      columns(rec.OldKey),
		Lsn:         meta.LSN,
		Xid:         meta.Xid,
		KeyColumns:  meta.Keys,
		Leaf:        meta.Leaf,
		NoTupleData: rec.NoTupleData,
	}
	if !meta.CommitTime.IsZero() {
		c.CommitTime = meta.CommitTime.Format(walheader.TimeLayout)
	}
	for _, tt := range rec.Tables {
		c.TruncateTables = append(c.TruncateTables, tt.String())
	}
	return c, nil
}

var jsonOpts = protojson.MarshalOptions{UseProtoNames: true}

// changeJSON renders a message as one line of JSON. protojson's spacing is
// deliberately unstable; it is compacted so that the output is byte-stable.
func changeJSON(m *nats.Msg) ([]byte, error) {
	c, err := toChange(m)
	if err != nil {
		return nil, err
	}
	b, err := jsonOpts.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode change %s: %w", c.Lsn, err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, fmt.Errorf("compact change %s: %w", c.Lsn, err)
	}
	return out.Bytes(), nil
}

func columns(cols []testdecoding.Column) []*redmsv1.Column {
	var out []*redmsv1.Column
	for _, c := range cols {
		out = append(out, &redmsv1.Column{Name: c.Name, Type: c.Type, Value: c.Value, Null: c.Null, UnchangedToast: c.Unchanged})
	}
	return out
}
