package e2e

import (
	"context"
	"log/slog"
	"testing"
)

// testLogger sends slog records to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(&tHandler{t: t})
}

type tHandler struct {
	t     *testing.T
	attrs []slog.Attr
}

func (h *tHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *tHandler) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	for _, a := range h.attrs {
		msg += " " + a.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		msg += " " + a.String()
		return true
	})
	h.t.Log(msg)
	return nil
}

func (h *tHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &tHandler{t: h.t, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *tHandler) WithGroup(string) slog.Handler { return h }
