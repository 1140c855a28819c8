package stream

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestValidate(t *testing.T) {
	good := Config(Settings{Name: "REDMS_WAL", Replicas: 1, MaxBytes: -1})
	if err := Validate(good); err != nil {
		t.Fatalf("own config rejected: %v", err)
	}
	if !good.AllowDirect {
		t.Error("stream without direct access: `nats stream view` cannot page a work-queue stream")
	}
	cases := []struct {
		name   string
		change func(*jetstream.StreamConfig)
		want   []string
	}{
		{"retention", func(c *jetstream.StreamConfig) { c.Retention = jetstream.LimitsPolicy }, []string{"retention is Limits, want workqueue"}},
		{"discard", func(c *jetstream.StreamConfig) { c.Discard = jetstream.DiscardOld }, []string{"discard policy is DiscardOld, want new"}},
		{"subjects", func(c *jetstream.StreamConfig) { c.Subjects = []string{"redms.wal.shop.>"} }, []string{`subjects are ["redms.wal.shop.>"], want ["redms.wal.>"]`}},
		{"extra subject", func(c *jetstream.StreamConfig) { c.Subjects = append(c.Subjects, "other") }, []string{"subjects are"}},
		{"memory", func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage }, []string{"storage is Memory, want file"}},
		{"several", func(c *jetstream.StreamConfig) {
			c.Retention = jetstream.InterestPolicy
			c.Discard = jetstream.DiscardOld
		}, []string{"retention is Interest", "discard policy is DiscardOld"}},
	}
	for _, c := range cases {
		cfg := Config(Settings{Name: "REDMS_WAL", Replicas: 1, MaxBytes: -1})
		c.change(&cfg)
		err := Validate(cfg)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
		if !strings.Contains(err.Error(), "stream REDMS_WAL") {
			t.Errorf("%s: error %q does not name the stream", c.name, err)
		}
	}
}

func TestInflightBytes(t *testing.T) {
	cases := []struct {
		limit    int
		maxBytes int64
		want     int
	}{
		{32 << 20, -1, 32 << 20},       // unlimited stream: the configured limit
		{32 << 20, 0, 32 << 20},        // 0 is unlimited too
		{32 << 20, 1 << 20, 128 << 10}, // an eighth of a byte-limited stream
		{64 << 10, 1 << 20, 64 << 10},  // a lower configured limit stays
		{32 << 20, 7, 1},               // never zero: one message is always sent
	}
	for _, c := range cases {
		if got := InflightBytes(c.limit, c.maxBytes); got != c.want {
			t.Errorf("InflightBytes(%d, %d) = %d, want %d", c.limit, c.maxBytes, got, c.want)
		}
	}
}
