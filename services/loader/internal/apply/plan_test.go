package apply

import (
	"testing"

	"github.com/redms/redms/pkg/typemap"
)

func TestHolds(t *testing.T) {
	v := func(n int) typemap.Target { return typemap.Make(typemap.KindVarchar, 0, 0, n) }
	num := func(p, s int) typemap.Target { return typemap.Make(typemap.KindNumeric, p, s, 0) }
	k := func(kind typemap.Kind) typemap.Target { return typemap.Make(kind, 0, 0, 0) }
	cases := []struct {
		have, want typemap.Target
		holds      bool
	}{
		{v(40), v(20), true},
		{v(20), v(40), false},
		{num(38, 10), num(19, 8), true},
		{num(19, 8), num(38, 10), false},
		{num(20, 2), num(19, 8), false},
		{k(typemap.KindBigInt), k(typemap.KindInteger), true},
		{k(typemap.KindInteger), k(typemap.KindSmallInt), true},
		{k(typemap.KindSmallInt), k(typemap.KindBigInt), false},
		{k(typemap.KindDouble), k(typemap.KindReal), true},
		{k(typemap.KindReal), k(typemap.KindDouble), false},
		{k(typemap.KindDouble), k(typemap.KindBigInt), false},
		{v(65535), k(typemap.KindInteger), false},
		{k(typemap.KindTimestamp), k(typemap.KindTimestampTZ), false},
		{v(65535), k(typemap.KindSuper), true},
		{v(65535), typemap.Make(typemap.KindVarbyte, 0, 0, typemap.MaxVarbyte), true},
		{typemap.Make(typemap.KindVarbyte, 0, 0, 10), typemap.Make(typemap.KindVarbyte, 0, 0, 20), false},
		{k(typemap.KindSuper), v(65535), false},
	}
	for _, c := range cases {
		if got := holds(c.have, c.want); got != c.holds {
			t.Errorf("holds(%s, %s) = %v", c.have.SQL, c.want.SQL, got)
		}
	}
}
