// Package window decides when a table's open window of changes closes:
// when its oldest new message has waited the window duration (by a timer,
// even when no further message arrives), or when it holds the window's
// bytes or changes (a message, a batch, can hold many; it is never split
// across windows, so a window may pass the changes limit by one batch).
// Fill counts one open window and owns its deadline.
package window

import "time"

// Limits close a window at whichever is reached first.
type Limits struct {
	Duration time.Duration // age of the oldest message, measured from its arrival
	Bytes    int64         // payload plus header bytes, plus what the window keeps of each change (apply.Footprint)
	Records  int           // changes, not messages
}

// Fill counts what a table's open window received.
type Fill struct {
	limits  Limits
	opened  time.Time
	bytes   int64
	records int
}

// New returns an empty fill with the given limits.
func New(l Limits) *Fill { return &Fill{limits: l} }

// Add counts one message of changes changes and size bytes that arrived
// at now.
func (f *Fill) Add(changes, size int, now time.Time) {
	if f.records == 0 {
		f.opened = now
	}
	f.records += max(changes, 1)
	f.bytes += int64(size)
}

// Records is the number of changes of the window's messages.
func (f *Fill) Records() int { return f.records }

// Empty reports whether the window received nothing.
func (f *Fill) Empty() bool { return f.records == 0 }

// Bytes is the size of the window's messages.
func (f *Fill) Bytes() int64 { return f.bytes }

// Full reports whether the window reached its bytes or records limit.
func (f *Fill) Full() bool {
	return f.records > 0 && (f.records >= f.limits.Records || f.bytes >= f.limits.Bytes)
}

// Deadline is when the window closes by age; zero when it is empty.
func (f *Fill) Deadline() time.Time {
	if f.records == 0 {
		return time.Time{}
	}
	return f.opened.Add(f.limits.Duration)
}

// Reset empties the window.
func (f *Fill) Reset() { f.opened, f.bytes, f.records = time.Time{}, 0, 0 }
