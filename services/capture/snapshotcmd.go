package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/pkg/snaprequest"
	"github.com/redms/redms/pkg/subject"
)

// snapshotCmd is `redms-capture snapshot [--where SQL] schema.table ...`
// (record requests the running capture performs) and `redms-capture
// snapshot status` (show each table's latest snapshot).
func snapshotCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("redms-capture snapshot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	where := fs.String("where", "", "snapshot only the rows matching this SQL condition over the source table's columns (the rows it leaves out are not touched in the warehouse)")
	reason := fs.String("reason", "requested by an operator", "why, recorded in the request and the status")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: redms-capture snapshot [--where SQL] schema.table ...\n       redms-capture snapshot status")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	cfg, err := readConfig(true)
	if err != nil {
		fmt.Fprintln(stderr, "redms-capture snapshot:", err)
		return 2
	}
	ctx, stop := service.SignalContext(context.Background())
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("redms-capture snapshot"))
	if err != nil {
		fmt.Fprintln(stderr, "redms-capture snapshot: connect to nats:", err)
		return 1
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(stderr, "redms-capture snapshot:", err)
		return 1
	}
	if fs.NArg() == 1 && fs.Arg(0) == "status" {
		kv, err := js.KeyValue(ctx, snaprequest.StatusBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			fmt.Fprintln(stdout, "no snapshot has run yet")
			return 0
		}
		if err != nil {
			fmt.Fprintln(stderr, "redms-capture snapshot status:", err)
			return 1
		}
		all, err := snaprequest.ReadStatus(ctx, kv)
		if err != nil {
			fmt.Fprintln(stderr, "redms-capture snapshot status:", err)
			return 1
		}
		printStatus(stdout, all, isTerminal(stdout), time.Now())
		return 0
	}
	db, err := sourceDB(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "redms-capture snapshot:", err)
		return 2
	}
	kv, err := snaprequest.OpenRequests(ctx, js, 0)
	if err != nil {
		fmt.Fprintln(stderr, "redms-capture snapshot:", err)
		return 1
	}
	host, _ := os.Hostname()
	for _, name := range fs.Args() {
		schema, table, ok := strings.Cut(name, ".")
		if !ok || schema == "" || table == "" {
			fmt.Fprintf(stderr, "redms-capture snapshot: %q: want schema.table\n", name)
			return 2
		}
		if !cfg.filter.Selected(schema, table) {
			fmt.Fprintf(stderr, "redms-capture snapshot: %s is not published (REDMS_INCLUDE_TABLES/REDMS_EXCLUDE_TABLES)\n", name)
			return 2
		}
		key := subject.KVKey(subject.Table{DB: db, Schema: schema, Name: table})
		req := snaprequest.Request{Table: name, Reason: *reason, Where: *where, RequestedBy: "redms-capture snapshot@" + host,
			RequestedAt: time.Now().UTC(), ID: fmt.Sprintf("cli-%d", time.Now().UnixNano())}
		if err := snaprequest.Put(ctx, kv, key, req); err != nil {
			fmt.Fprintln(stderr, "redms-capture snapshot:", err)
			return 1
		}
		fmt.Fprintf(stdout, "requested a snapshot of %s (id %s); the running redms-capture performs it: see redms-capture snapshot status\n", name, req.ID)
	}
	return 0
}

// sourceDB is the database token of subjects: REDMS_DATABASE, else the
// source's current_database().
func sourceDB(ctx context.Context, cfg Config) (string, error) {
	if cfg.Database != "" {
		return cfg.Database, nil
	}
	if cfg.SourceURL == "" {
		return "", errors.New("set REDMS_DATABASE or REDMS_SOURCE_URL (the database token of subjects and KV keys)")
	}
	conn, err := pgx.Connect(ctx, cfg.SourceURL)
	if err != nil {
		return "", fmt.Errorf("connect to the source: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var db string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		return "", fmt.Errorf("read current database: %w", err)
	}
	return db, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// printStatus shows each table's latest snapshot: progress bars on a
// terminal, one line of key=value fields otherwise.
func printStatus(w io.Writer, all map[string]snaprequest.Status, tty bool, now time.Time) {
	list := make([]snaprequest.Status, 0, len(all))
	for _, s := range all {
		list = append(list, s)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Table < list[j].Table })
	if len(list) == 0 {
		fmt.Fprintln(w, "no snapshot has run yet")
		return
	}
	for _, s := range list {
		end := now
		if s.FinishedAt != nil {
			end = *s.FinishedAt
		}
		secs := end.Sub(s.StartedAt).Seconds()
		rate := 0.0
		if secs > 0 {
			rate = float64(s.RowsDone) / secs
		}
		eta := "-"
		if s.Active() && rate > 0 && s.RowsEstimate > s.RowsDone {
			eta = (time.Duration(float64(s.RowsEstimate-s.RowsDone)/rate) * time.Second).Round(time.Second).String()
		}
		frac := 0.0
		switch {
		case s.State == snaprequest.StateDone:
			frac = 1
		case s.RowsEstimate > 0:
			frac = min(float64(s.RowsDone)/float64(s.RowsEstimate), 1)
		}
		if tty {
			const width = 30
			n := int(frac * width)
			fmt.Fprintf(w, "%-30s [%s%s] %3.0f%% %d/%d rows %.0f rows/s eta %s %s", s.Table,
				strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, s.RowsDone, s.RowsEstimate, rate, eta, s.State)
		} else {
			fmt.Fprintf(w, "table=%s state=%s rows_done=%d rows_estimate=%d rate=%.0f eta=%s chunks=%d id=%s", s.Table, s.State,
				s.RowsDone, s.RowsEstimate, rate, eta, s.Chunk, s.ID)
		}
		if s.Error != "" {
			fmt.Fprintf(w, " error=%q", s.Error)
		}
		fmt.Fprintln(w)
	}
}
