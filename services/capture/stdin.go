package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/services/capture/internal/batch"
	"github.com/redms/redms/services/capture/internal/change"
)

// readStdin publishes pg_recvlogical text. There are no LSNs: record n
// (1-based, every record counted) gets LSN 0/n; positions are the run's
// epoch (REDMS_STDIN_EPOCH, default the start time in ns) and the change
// record's number, so a later run's ids differ.
func (a *app) readStdin(ctx context.Context, in io.Reader, asm *change.Assembler, out chan<- batch.Chunk) error {
	defer close(out)
	hand := func(b batch.Chunk) error {
		select {
		case out <- b:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	epoch := a.cfg.StdinEpoch
	if epoch == 0 {
		epoch = uint64(time.Now().UnixNano())
	}
	asm.Start(epoch)
	a.log.Info("reading stdin", "epoch", epoch)
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
		b, ok, err := asm.Record(ctx, &rec, raw, pglogrepl.LSN(n))
		if err != nil {
			return fmt.Errorf("stdin record %d (line %d): %w", n, r.Line(), err)
		}
		if ok {
			if err := hand(b); err != nil {
				return err
			}
		}
	}
	if b, ok := asm.Flush(); ok {
		if err := hand(b); err != nil {
			return err
		}
	}
	if bad > 0 {
		return fmt.Errorf("%w: %d of %d", errBadInput, bad, n)
	}
	return nil
}
