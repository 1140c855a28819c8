package window

import (
	"testing"
	"time"
)

func TestWindowCloses(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	limits := Limits{Duration: 10 * time.Second, Bytes: 100, Records: 3}
	tests := []struct {
		name  string
		sizes []int
		at    time.Duration // when Due is asked, after the first message
		due   bool
	}{
		{"empty never closes", nil, time.Hour, false},
		{"young and small stays open", []int{10}, 9 * time.Second, false},
		{"oldest message reaches the duration", []int{10}, 10 * time.Second, true},
		{"records limit", []int{1, 1, 1}, 0, true},
		{"below records limit", []int{1, 1}, 0, false},
		{"bytes limit", []int{60, 40}, 0, true},
		{"below bytes limit", []int{60, 39}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := New(limits)
			for i, s := range tt.sizes {
				w.Add(s, t0.Add(time.Duration(i)*time.Second/10))
			}
			if got := w.Due(t0.Add(tt.at)); got != tt.due {
				t.Fatalf("Due = %v, want %v (records %d, bytes %d)", got, tt.due, w.Records(), w.Bytes())
			}
		})
	}
}

func TestWindowDeadlineFollowsOldestMessage(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w := New(Limits{Duration: 10 * time.Second, Bytes: 1 << 20, Records: 100})
	if !w.Deadline().IsZero() {
		t.Fatalf("empty window has deadline %v", w.Deadline())
	}
	w.Add(5, t0)
	w.Add(5, t0.Add(7*time.Second))
	if want := t0.Add(10 * time.Second); !w.Deadline().Equal(want) {
		t.Fatalf("Deadline = %v, want %v", w.Deadline(), want)
	}
	if w.Room() != 98 {
		t.Fatalf("Room = %d, want 98", w.Room())
	}
	w.Reset()
	if !w.Empty() || w.Bytes() != 0 || !w.Deadline().IsZero() {
		t.Fatalf("Reset left records %d bytes %d deadline %v", w.Records(), w.Bytes(), w.Deadline())
	}
	w.Add(1, t0.Add(time.Minute))
	if want := t0.Add(time.Minute + 10*time.Second); !w.Deadline().Equal(want) {
		t.Fatalf("Deadline after reset = %v, want %v", w.Deadline(), want)
	}
}
