package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/redms/redms/pkg/testinfra/natslocal"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
)

// TestRecordOverMaxPayload: a 2.4 MB row against a server whose max payload
// is 256 KiB is published in parts on its table's subject (Redms-Part k/n,
// the change's position, ids with :p<k>), the slot is confirmed past it,
// and the other tables keep flowing.
func TestRecordOverMaxPayload(t *testing.T) {
	const maxPayload = 256 << 10
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATSWith(t, natslocal.Options{MaxPayload: maxPayload})
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, `CREATE TABLE big (id int PRIMARY KEY, body text); CREATE TABLE small (id int PRIMARY KEY)`)
	p := startCapture(t, liveEnv(url, ns.URL(), "payload"))
	testenv.Eventually(t, 30*time.Second, "slot", func() bool { return slotConfirmed(t, db, "payload") != 0 })

	exec1(t, db, `INSERT INTO small VALUES (1)`)
	// 2.4 MB of text that does not compress away.
	exec1(t, db, `INSERT INTO big SELECT 1, string_agg(md5(g::text), '') FROM generate_series(1, 75000) g`)
	exec1(t, db, `INSERT INTO small VALUES (2)`)
	exec1(t, db, `BEGIN; INSERT INTO small VALUES (3); INSERT INTO big VALUES (2, 'small row'); COMMIT`)
	end := currentLSN(t, db)

	testenv.Eventually(t, time.Minute, "the small rows after the big one", func() bool {
		for _, m := range readStream(t, js, "REDMS_WAL") {
			if strings.Contains(m.Data, "public.small: INSERT: id[integer]:3") {
				return true
			}
		}
		return false
	})
	testenv.Eventually(t, 30*time.Second, "slot confirmed past the big row", func() bool { return slotConfirmed(t, db, "payload") >= end })

	var (
		parts    []streamMsg
		body     strings.Builder
		others   []string
		bigCount int
	)
	for _, m := range readChanges(t, js, "REDMS_WAL") {
		if m.Header.Get(walheader.Part) == "" {
			others = append(others, m.Data)
			if m.Subject == "redms.wal.shop.public.big" {
				bigCount++
			}
			continue
		}
		if m.Subject != "redms.wal.shop.public.big" {
			t.Errorf("part on %s", m.Subject)
		}
		parts = append(parts, m)
		body.WriteString(m.Data)
	}
	if len(parts) < 10 {
		t.Fatalf("%d parts of a 2.4 MB row with a 256 KiB max payload; other messages %d", len(parts), len(others))
	}
	pos := parts[0].Header.Get(walheader.FirstPos)
	prev := parts[0].Header.Get(walheader.PrevPos)
	for i, m := range parts {
		size := len(m.Data)
		for k, vs := range m.Header {
			for _, v := range vs {
				size += len(k) + len(v) + 4
			}
		}
		if size > maxPayload {
			t.Errorf("part %d: %d bytes of body and headers, over the max payload %d", i+1, size, maxPayload)
		}
		if got, want := m.Header.Get(walheader.Part), fmt.Sprintf("%d/%d", i+1, len(parts)); got != want {
			t.Errorf("part %d: %s %q, want %q", i+1, walheader.Part, got, want)
		}
		if m.Header.Get(walheader.FirstPos) != pos || m.Header.Get(walheader.PrevPos) != prev || pos == "" {
			t.Errorf("part %d: position %q prev %q, want every part at %q prev %q", i+1, m.Header.Get(walheader.FirstPos), m.Header.Get(walheader.PrevPos), pos, prev)
		}
		if got, want := m.Header.Get(walheader.MsgID), fmt.Sprintf("redms.wal.shop.public.big:%s:p%d", pos, i+1); got != want {
			t.Errorf("part %d: id %q, want %q", i+1, got, want)
		}
		if _, err := pglogrepl.ParseLSN(m.Header.Get(walheader.CommitLSN)); err != nil {
			t.Errorf("part %d: commit lsn: %v", i+1, err)
		}
	}
	if b := body.String(); !strings.HasPrefix(b, "table public.big: INSERT: id[integer]:1 body[text]:'") || len(b) < 2_400_000 || !strings.HasSuffix(b, "'") {
		t.Errorf("joined parts: %d bytes %.80q…", len(b), b)
	}
	if len(others) != 4 || bigCount != 1 {
		t.Errorf("other messages %q, want small 1, 2, 3 and big 2", others)
	}
	if err := p.Stop(15 * time.Second); err != nil {
		t.Fatalf("capture exit: %v", err)
	}
}
