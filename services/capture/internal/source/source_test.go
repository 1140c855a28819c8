package source

import (
	"testing"
	"time"
)

func TestSlotSQL(t *testing.T) {
	want := "SELECT plugin, confirmed_flush_lsn, database, database = current_database(), active_pid FROM pg_replication_slots WHERE slot_name = 'redms'"
	if got := SlotSQL("redms"); got != want {
		t.Errorf("SlotSQL = %q, want %q", got, want)
	}
	for name, ok := range map[string]bool{"redms": true, "redms_1": true, "Redms": false, "a-b": false, "x'y": false, "": false} {
		if ValidSlotName(name) != ok {
			t.Errorf("ValidSlotName(%q) = %v", name, !ok)
		}
	}
}

func TestReplicationURL(t *testing.T) {
	cases := map[string]string{
		"postgres://u@h:5432/db?sslmode=disable": "postgres://u@h:5432/db?replication=database&sslmode=disable",
		"postgresql://u@h/db":                    "postgresql://u@h/db?replication=database",
		"host=h dbname=db":                       "host=h dbname=db replication=database",
	}
	for in, want := range cases {
		got, err := ReplicationURL(in)
		if err != nil || got != want {
			t.Errorf("ReplicationURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParsePGDuration(t *testing.T) {
	cases := map[string]time.Duration{"60s": time.Minute, "1min": time.Minute, "500ms": 500 * time.Millisecond, "0": 0, "2h": 2 * time.Hour}
	for in, want := range cases {
		got, err := ParsePGDuration(in)
		if err != nil || got != want {
			t.Errorf("ParsePGDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "s", "10 weeks"} {
		if _, err := ParsePGDuration(bad); err == nil {
			t.Errorf("ParsePGDuration(%q): no error", bad)
		}
	}
}
