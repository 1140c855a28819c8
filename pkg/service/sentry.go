package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/getsentry/sentry-go"
)

// Error reporting to Sentry, optional: REDMS_SENTRY_DSN empty turns it off
// and every function here does nothing.
//
// main wires it once:
//
//	flush, err := service.InitSentry(cfg.SentryDSN, version, map[string]string{"service": "redms-loader", "replica": id})
//	if err != nil { ... }
//	defer flush()
//	defer func() {
//		if r := recover(); r != nil {
//			service.ReportPanic(r)
//			flush()
//			panic(r) // or log and os.Exit(2)
//		}
//	}()
//	log = slog.New(service.SentryHandler(log.Handler())) // every Error log line becomes an event
//
// service.New does all of this; a parked table reaches Sentry as the
// loader's Error log line with table, lsn and replica attributes.

// sentryFlushTimeout bounds the wait for queued events at exit.
const sentryFlushTimeout = 5 * time.Second

// tagKeys are the log attributes SentryHandler turns into searchable tags;
// the others go into the event's "log" context.
var tagKeys = map[string]bool{
	"table": true, "lsn": true, "subject": true, "xid": true,
	"replica": true, "consumer": true, "service": true, "slot": true,
}

// InitSentry enables Sentry reporting for the process when dsn is not empty:
// release and tags are set on every event. flush waits (up to 5 s) for
// queued events; call it before exiting. With an empty dsn it returns a
// no-op flush.
func InitSentry(dsn, release string, tags map[string]string) (flush func(), err error) {
	if dsn == "" {
		return func() {}, nil
	}
	if err := sentry.Init(sentry.ClientOptions{
		Dsn:              dsn,
		Release:          release,
		AttachStacktrace: true,
	}); err != nil {
		return func() {}, fmt.Errorf("init sentry: %w", err)
	}
	sentry.ConfigureScope(func(scope *sentry.Scope) { scope.SetTags(tags) })
	return func() { sentry.Flush(sentryFlushTimeout) }, nil
}

// sentryOn reports whether InitSentry enabled reporting.
func sentryOn() bool { return sentry.CurrentHub().Client() != nil }

// ReportPanic reports a value recovered from a panic in main as a fatal
// event with the current stack. main then flushes and exits.
func ReportPanic(v any) {
	if !sentryOn() {
		return
	}
	ev := sentry.NewEvent()
	ev.Level = sentry.LevelFatal
	ev.Message = fmt.Sprintf("panic: %v", v)
	err, ok := v.(error)
	if !ok {
		err = errors.New(ev.Message)
	}
	ev.SetException(err, 5)
	if st := sentry.NewStacktrace(); st != nil && len(ev.Exception) > 0 {
		ev.Exception[len(ev.Exception)-1].Stacktrace = st
	}
	sentry.CaptureEvent(ev)
}

// SentryHandler wraps next: every record is passed to next, and records at
// Error level or above are also sent to Sentry (when InitSentry enabled it),
// with the attributes table, lsn, subject, xid, replica, consumer, service
// and slot as tags, an error-valued attribute as the exception, and the rest
// in the event's "log" context.
func SentryHandler(next slog.Handler) slog.Handler {
	return &sentryHandler{next: next}
}

type sentryHandler struct {
	next   slog.Handler
	attrs  []slog.Attr // from WithAttrs, keys already prefixed by groups
	prefix string      // open groups, "a.b."
}

var _ slog.Handler = (*sentryHandler)(nil)

func (h *sentryHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l) || (l >= slog.LevelError && sentryOn())
}

func (h *sentryHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.next.Enabled(ctx, r.Level) {
		err = h.next.Handle(ctx, r)
	}
	if r.Level < slog.LevelError || !sentryOn() {
		return err
	}
	ev := sentry.NewEvent()
	ev.Level = sentry.LevelError
	ev.Message = r.Message
	ev.Tags = map[string]string{}
	extra := sentry.Context{}
	add := func(a slog.Attr) {
		v := a.Value.Resolve()
		if e, ok := v.Any().(error); ok && len(ev.Exception) == 0 {
			ev.SetException(e, 5)
			extra[a.Key] = e.Error()
			return
		}
		if tagKeys[a.Key] {
			ev.Tags[a.Key] = v.String()
			return
		}
		extra[a.Key] = v.String()
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool {
		a.Key = h.prefix + a.Key
		add(a)
		return true
	})
	if len(extra) > 0 {
		ev.Contexts = map[string]sentry.Context{"log": extra}
	}
	sentry.CaptureEvent(ev)
	return err
}

func (h *sentryHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := &sentryHandler{next: h.next.WithAttrs(attrs), prefix: h.prefix}
	c.attrs = append(append([]slog.Attr{}, h.attrs...), prefixed(h.prefix, attrs)...)
	return c
}

func (h *sentryHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &sentryHandler{next: h.next.WithGroup(name), attrs: h.attrs, prefix: h.prefix + name + "."}
}

func prefixed(prefix string, attrs []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		a.Key = prefix + a.Key
		out[i] = a
	}
	return out
}
