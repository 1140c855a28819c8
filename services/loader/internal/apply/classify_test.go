package apply

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/redms/redms/pkg/subject"
)

// TestClassifyKeepsTheServersDetail: a failed statement's error, retried
// or parked, carries the server's DETAIL and HINT. pgconn's error text
// leaves them out, so a 1023 conflict was logged as "ERROR: 1023 (SQLSTATE
// 40001)" with nothing saying what conflicted.
func TestClassifyKeepsTheServersDetail(t *testing.T) {
	x := &job{target: `"public"."t"`, w: Window{Table: subject.Table{DB: "shop", Schema: "public", Name: "t"}, Msgs: []Msg{{Seq: 7}}}}
	conflict := &pgconn.PgError{Severity: "ERROR", Code: "40001", Message: "1023",
		Detail: "Serializable isolation violation on table - 100123, transactions forming the cycle are: 77, 78 (pid:4242)"}
	err := x.classify("merge staged rows", fmt.Errorf("exec: %w", conflict))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe != conflict {
		t.Fatalf("classify lost the PgError: %v", err)
	}
	if _, parked := errors.AsType[*ParkError](err); parked {
		t.Fatalf("a conflict parked: %v", err)
	}
	if !strings.Contains(err.Error(), "detail: Serializable isolation violation on table - 100123") {
		t.Errorf("retried error %q does not carry the detail", err)
	}

	bad := &pgconn.PgError{Severity: "ERROR", Code: "22001", Message: "value too long for type character varying(3)", Hint: "widen the column"}
	err = x.classify("merge staged rows", bad)
	p, parked := errors.AsType[*ParkError](err)
	if !parked {
		t.Fatalf("a value error did not park: %v", err)
	}
	if !strings.Contains(p.Reason, "hint: widen the column") || !strings.Contains(p.Reason, "value too long") {
		t.Errorf("park reason %q does not carry the message and hint", p.Reason)
	}
	if plain := errors.New("connection reset"); x.classify("commit", plain).Error() != `commit on "public"."t": connection reset` {
		t.Errorf("an error without detail changed: %v", x.classify("commit", plain))
	}
}
