// Package window decides when a table's window of changes closes: when its
// oldest message has waited the window duration (by a timer, even when no
// further message arrives), or when it holds the window's bytes or records.
package window

import "time"

// Limits close a window at whichever is reached first.
type Limits struct {
	Duration time.Duration // age of the oldest message, measured from its arrival
	Bytes    int64         // payload plus header bytes
	Records  int
}

// Window counts what a table's open window holds.
type Window struct {
	limits  Limits
	opened  time.Time
	bytes   int64
	records int
}

// New returns an empty window with the given limits.
func New(l Limits) *Window { return &Window{limits: l} }

// Add counts one message of size bytes that arrived at now.
func (w *Window) Add(size int, now time.Time) {
	if w.records == 0 {
		w.opened = now
	}
	w.records++
	w.bytes += int64(size)
}

// Empty reports whether the window holds nothing.
func (w *Window) Empty() bool { return w.records == 0 }

// Records is the number of messages in the window.
func (w *Window) Records() int { return w.records }

// Bytes is the size of the window's messages.
func (w *Window) Bytes() int64 { return w.bytes }

// Full reports whether the window reached its bytes or records limit.
func (w *Window) Full() bool {
	return w.records > 0 && (w.records >= w.limits.Records || w.bytes >= w.limits.Bytes)
}

// Deadline is when the window closes by age; zero when the window is empty.
func (w *Window) Deadline() time.Time {
	if w.records == 0 {
		return time.Time{}
	}
	return w.opened.Add(w.limits.Duration)
}

// Due reports whether the window must close at now.
func (w *Window) Due(now time.Time) bool {
	return w.Full() || (w.records > 0 && !now.Before(w.Deadline()))
}

// Room is how many more records the window takes before it is full.
func (w *Window) Room() int { return max(w.limits.Records-w.records, 0) }

// Reset empties the window.
func (w *Window) Reset() { w.opened, w.bytes, w.records = time.Time{}, 0, 0 }
