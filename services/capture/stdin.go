package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pglogrepl"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/services/capture/internal/change"
	"github.com/redms/redms/services/capture/internal/publish"
)

// readStdin publishes pg_recvlogical text. There are no LSNs: record n
// (1-based, every record counted) gets LSN 0/n.
func (a *app) readStdin(ctx context.Context, in io.Reader, b *change.Builder, out chan<- publish.Batch) error {
	defer close(out)
	b.Emit = func(ctx context.Context, batch publish.Batch) error {
		select {
		case out <- batch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r := testdecoding.NewReader(in)
	var (
		rec testdecoding.Record
		n   uint64
		bad int
	)
	for {
		raw, err := r.NextInto(&rec)
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *testdecoding.ParseError
		if errors.As(err, &pe) {
			n++
			bad++
			fmt.Fprintf(a.stderr, "line %d: %s\n", r.Line(), pe.Reason)
			a.log.Error("unparseable record", "line", r.Line(), "reason", pe.Reason, "table", pe.Table)
			continue
		}
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		n++
		if err := b.Record(ctx, &rec, raw, pglogrepl.LSN(n)); err != nil {
			return err
		}
	}
	if err := b.Flush(ctx); err != nil {
		return err
	}
	if bad > 0 {
		return fmt.Errorf("%w: %d of %d", errBadInput, bad, n)
	}
	return nil
}
