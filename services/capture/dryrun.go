package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/capture/internal/publish"
)

// dryRun writes one JSON object per change instead of publishing.
type dryRun struct {
	w *bufio.Writer
}

func newDryRun(w io.Writer) *dryRun { return &dryRun{w: bufio.NewWriterSize(w, 64<<10)} }

// Run writes every batch read from in until it is closed.
func (d *dryRun) Run(ctx context.Context, in <-chan publish.Batch) error {
	defer d.w.Flush()
	for {
		select {
		case b, ok := <-in:
			if !ok {
				return d.w.Flush()
			}
			for _, m := range b.Messages {
				line, err := changeJSON(m)
				if err != nil {
					return err
				}
				d.w.Write(line)
				d.w.WriteByte('\n')
			}
			if err := d.w.Flush(); err != nil {
				return fmt.Errorf("write dry-run output: %w", err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

type jsonColumn struct {
	Name           string `json:"name"`
	Type           string `json:"type"`
	Value          string `json:"value,omitempty"`
	Null           bool   `json:"null,omitempty"`
	UnchangedToast bool   `json:"unchanged_toast,omitempty"`
}

type jsonChange struct {
	Table      jsonTable    `json:"table"`
	Op         string       `json:"op"`
	Columns    []jsonColumn `json:"columns,omitempty"`
	OldKey     []jsonColumn `json:"old_key,omitempty"`
	Lsn        string       `json:"lsn"`
	Xid        string       `json:"xid,omitempty"`
	KeyColumns []string     `json:"key_columns"`
}

type jsonTable struct {
	Db     string `json:"db"`
	Schema string `json:"schema"`
	Name   string `json:"name"`
}

// changeJSON renders a message as the change it carries.
func changeJSON(m *nats.Msg) ([]byte, error) {
	rec, err := testdecoding.Parse(m.Data)
	if err != nil {
		return nil, fmt.Errorf("re-parse %s: %w", m.Header.Get(walheader.MsgID), err)
	}
	t, err := subject.Parse(m.Subject)
	if err != nil {
		return nil, fmt.Errorf("dry-run: %w", err)
	}
	var keys []string
	if err := json.Unmarshal([]byte(m.Header.Get(walheader.Keys)), &keys); err != nil {
		return nil, fmt.Errorf("decode keys header: %w", err)
	}
	c := jsonChange{
		Table:      jsonTable{Db: t.DB, Schema: t.Schema, Name: t.Name},
		Op:         strings.ToLower(rec.Kind.String()),
		Columns:    columns(rec.Columns),
		OldKey:     columns(rec.OldKey),
		Lsn:        m.Header.Get(walheader.LSN),
		Xid:        m.Header.Get(walheader.Xid),
		KeyColumns: keys,
	}
	return json.Marshal(c)
}

func columns(cols []testdecoding.Column) []jsonColumn {
	out := make([]jsonColumn, 0, len(cols))
	for _, c := range cols {
		out = append(out, jsonColumn{Name: c.Name, Type: c.Type, Value: c.Value, Null: c.Null, UnchangedToast: c.Unchanged})
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
