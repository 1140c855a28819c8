package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/services/loader/internal/assign"
	"github.com/redms/redms/services/loader/internal/park"
)

// resume deletes the parked key of the table named by arg; the table's
// owner sees it, recreates the consumer and applies what was parked.
func resume(ctx context.Context, arg string, stdout, stderr io.Writer) int {
	// Of the shared settings resume uses only NATS and the stream.
	var cfg service.Settings
	if err := service.ReadEnv("REDMS", &cfg); err != nil {
		fmt.Fprintln(stderr, "redms-loader resume:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("redms-loader resume"))
	if err != nil {
		fmt.Fprintf(stderr, "redms-loader resume: connect to nats %s: %v\n", cfg.NATSURL, err)
		return 1
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(stderr, "redms-loader resume: open jetstream:", err)
		return 1
	}
	tables, err := streamTables(ctx, js, cfg.Stream)
	if err != nil {
		fmt.Fprintln(stderr, "redms-loader resume:", err)
		return 1
	}
	matches := MatchTable(arg, tables)
	switch len(matches) {
	case 0:
		fmt.Fprintf(stderr, "redms-loader resume: no table %q has messages or a consumer in stream %s\n", arg, cfg.Stream)
		return 1
	case 1:
	default:
		var names []string
		for _, t := range matches {
			names = append(names, t.DB+"."+t.String())
		}
		fmt.Fprintf(stderr, "redms-loader resume: %q names several tables, say which: %s\n", arg, strings.Join(names, ", "))
		return 1
	}
	t := matches[0]
	parks, err := park.Lookup(ctx, js)
	if errors.Is(err, jetstream.ErrBucketNotFound) { // no loader ever parked anything
		fmt.Fprintf(stdout, "%s.%s is not parked\n", t.DB, t)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "redms-loader resume:", err)
		return 1
	}
	ok, err := parks.Resume(ctx, subject.KVKey(t))
	if err != nil {
		fmt.Fprintln(stderr, "redms-loader resume:", err)
		return 1
	}
	if !ok {
		fmt.Fprintf(stdout, "%s.%s is not parked\n", t.DB, t)
		return 0
	}
	fmt.Fprintf(stdout, "resumed %s.%s (consumer %s); its owner applies what was parked\n", t.DB, t, subject.ConsumerName(t))
	return 0
}

// streamTables lists the tables with messages or a consumer in the stream.
func streamTables(ctx context.Context, js jetstream.JetStream, stream string) ([]subject.Table, error) {
	subjects, err := assign.Subjects(ctx, js, stream)
	if err != nil {
		return nil, err
	}
	var out []subject.Table
	for _, subj := range subjects {
		if t, err := subject.Parse(subj); err == nil {
			out = append(out, t)
		}
	}
	return out, nil
}

// MatchTable returns the tables that arg names: schema.table,
// db.schema.table (unquoted), the consumer name or its KV key.
func MatchTable(arg string, tables []subject.Table) []subject.Table {
	var out []subject.Table
	for _, t := range tables {
		names := []string{t.String(), t.DB + "." + t.String(), subject.ConsumerName(t), subject.KVKey(t)}
		if slices.Contains(names, arg) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b subject.Table) int { return strings.Compare(a.DB+"."+a.String(), b.DB+"."+b.String()) })
	return out
}
