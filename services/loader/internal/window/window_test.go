package window

import (
	"testing"
	"time"
)

func TestFillIsFull(t *testing.T) {
	limits := Limits{Duration: 10 * time.Second, Bytes: 100, Records: 3}
	tests := []struct {
		name  string
		sizes []int
		full  bool
	}{
		{"empty", nil, false},
		{"records limit", []int{1, 1, 1}, true},
		{"below records limit", []int{1, 1}, false},
		{"bytes limit", []int{60, 40}, true},
		{"below bytes limit", []int{60, 39}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(limits)
			for _, s := range tt.sizes {
				f.Add(1, s, time.Now())
			}
			if got := f.Full(); got != tt.full {
				t.Fatalf("Full = %v, want %v (bytes %d)", got, tt.full, f.Bytes())
			}
		})
	}
}

// The records limit counts changes: one batch of three changes fills a
// window of three, two changes do not.
func TestFillCountsChanges(t *testing.T) {
	limits := Limits{Duration: 10 * time.Second, Bytes: 100, Records: 3}
	tests := []struct {
		name    string
		changes []int
		full    bool
	}{
		{"one batch at the limit", []int{3}, true},
		{"one batch past the limit", []int{1000}, true},
		{"two changes", []int{2}, false},
		{"a change and a batch", []int{1, 2}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(limits)
			for _, n := range tt.changes {
				f.Add(n, 1, time.Now())
			}
			if got := f.Full(); got != tt.full {
				t.Fatalf("Full = %v, want %v (bytes %d)", got, tt.full, f.Bytes())
			}
		})
	}
}

func TestFillDeadlineFollowsOldestMessage(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := New(Limits{Duration: 10 * time.Second, Bytes: 1 << 20, Records: 100})
	if !f.Deadline().IsZero() || !f.Empty() {
		t.Fatalf("empty window has deadline %v", f.Deadline())
	}
	f.Add(1, 5, t0)
	f.Add(1, 5, t0.Add(7*time.Second))
	if want := t0.Add(10 * time.Second); !f.Deadline().Equal(want) {
		t.Fatalf("Deadline = %v, want %v", f.Deadline(), want)
	}
	f.Reset()
	if !f.Empty() || f.Bytes() != 0 || !f.Deadline().IsZero() {
		t.Fatalf("Reset left bytes %d deadline %v", f.Bytes(), f.Deadline())
	}
	f.Add(1, 1, t0.Add(time.Minute))
	if want := t0.Add(time.Minute + 10*time.Second); !f.Deadline().Equal(want) {
		t.Fatalf("Deadline after reset = %v, want %v", f.Deadline(), want)
	}
}
