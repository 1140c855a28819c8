package workload

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// column is one non-key column of a generated table.
type column struct {
	name    string
	sqlType string
	gen     valueFunc
	// sticky columns are left out of most updates, so their TOASTed values
	// reach the replication stream as unchanged-toast-datum.
	sticky bool
}

// key is a row's primary key; every generated key column is an integer.
type key []int64

func (k key) String() string {
	parts := make([]string, len(k))
	for i, v := range k {
		parts[i] = strconv.FormatInt(v, 10)
	}
	return strings.Join(parts, ",")
}

// keySet is the live keys of one table in a deterministic order.
type keySet struct {
	keys []key
	at   map[string]int
}

func (s *keySet) add(k key) {
	if s.at == nil {
		s.at = map[string]int{}
	}
	s.at[k.String()] = len(s.keys)
	s.keys = append(s.keys, k)
}

func (s *keySet) has(k key) bool {
	_, ok := s.at[k.String()]
	return ok
}

func (s *keySet) remove(k key) {
	i, ok := s.at[k.String()]
	if !ok {
		return
	}
	last := len(s.keys) - 1
	s.keys[i] = s.keys[last]
	s.at[s.keys[i].String()] = i
	s.keys = s.keys[:last]
	delete(s.at, k.String())
}

func (s *keySet) pick(r *rand.Rand) key { return s.keys[r.IntN(len(s.keys))] }

func (s *keySet) len() int { return len(s.keys) }

func (s *keySet) clear() { *s = keySet{} }

// table is the generator's model of one source table.
type table struct {
	name     string
	keyCols  []string
	keyTypes []string
	cols     []column
	// copyInserts makes some inserts a multi-row COPY (one WAL record
	// carrying several changes at one LSN).
	copyInserts bool
	// partitioned tables are partitioned by range on their last key column:
	// values below 3 go to the first leaf, the rest to the second.
	partitions []string

	live    keySet
	deleted []key
	counter int64
}

// nextKey returns a key that was never used before.
func (t *table) nextKey() key {
	t.counter++
	if len(t.keyCols) == 1 {
		return key{t.counter}
	}
	// Composite: several lines per parent, numbered from 1.
	return key{1 + (t.counter-1)/4, 1 + (t.counter-1)%4}
}

// movedKey returns a fresh key for a primary-key change of k: for a
// composite key only the last column moves (a line renumbered within its
// order), into a range inserts never use.
func (t *table) movedKey(k key) key {
	t.counter++
	if len(k) == 1 {
		return key{t.counter}
	}
	moved := append(key{}, k...)
	moved[len(moved)-1] = 1000 + t.counter
	return moved
}

func (t *table) column(name string) int {
	for i, c := range t.cols {
		if c.name == name {
			return i
		}
	}
	return -1
}

// Table names of the generated schema.
const (
	TableCustomers  = "customers"
	TableOrderLines = "order_lines"
	TableBig        = "Order.Items Big"
	TableAllTypes   = "all_types"
	TableSessions   = "sessions"
	TableLate       = "late_arrivals"
	TableMeasures   = "measurements"
	enumType        = "mood"
)

func customers() *table {
	return &table{
		name:     TableCustomers,
		keyCols:  []string{"id"},
		keyTypes: []string{"bigint"},
		cols: []column{
			{name: "name", sqlType: "text", gen: edgeOr(0.1, textEdges, word(3, 20))},
			{name: "email", sqlType: "varchar(64)", gen: edgeOr(0.05, withNull(strs("")), word(5, 40))},
			{name: "score", sqlType: "integer", gen: intIn(-1000, 1000000)},
			{name: "nickname", sqlType: "varchar(32)", gen: edgeOr(0.2, varcharEdges, word(1, 32))},
			{name: "balance", sqlType: "numeric(12,2)", gen: edgeOr(0.1, withNull(strs("0", "-9999999999.99", "9999999999.99", "1.50")), decimal(10, 2))},
			{name: "updated_at", sqlType: "timestamptz", gen: edgeOr(0.05, timestamptzEdges, timestamptz)},
		},
	}
}

func orderLines() *table {
	return &table{
		name:     TableOrderLines,
		keyCols:  []string{"order_id", "line_no"},
		keyTypes: []string{"bigint", "integer"},
		cols: []column{
			{name: "sku", sqlType: "text", gen: word(4, 12)},
			{name: "qty", sqlType: "integer", gen: intIn(1, 100)},
			{name: "price", sqlType: "numeric(10,2)", gen: decimal(8, 2)},
			{name: "note", sqlType: "varchar(20)", gen: edgeOr(0.3, varcharEdges, word(0, 20))},
		},
	}
}

func bigItems(toastBytes int) *table {
	return &table{
		name:     TableBig,
		keyCols:  []string{"id"},
		keyTypes: []string{"bigint"},
		cols: []column{
			{name: "Sku", sqlType: "text", gen: word(4, 12)},
			{name: "qty", sqlType: "integer", gen: intIn(0, 1000)},
			{name: "status", sqlType: "varchar(16)", gen: oneOf("new", "paid", "shipped", "returned")},
			{name: "payload", sqlType: "text", gen: incompressible(toastBytes), sticky: true},
			{name: "doc", sqlType: "jsonb", gen: edgeOr(0.2, jsonEdges, jsonDoc)},
		},
	}
}

func allTypes() *table {
	return &table{
		name:     TableAllTypes,
		keyCols:  []string{"id"},
		keyTypes: []string{"bigint"},
		cols: []column{
			{name: "c_smallint", sqlType: "smallint", gen: edgeOr(0.3, smallintEdges, intIn(-32768, 32767))},
			{name: "c_integer", sqlType: "integer", gen: edgeOr(0.3, integerEdges, intIn(-1e9, 1e9))},
			{name: "c_bigint", sqlType: "bigint", gen: edgeOr(0.3, bigintEdges, intIn(-1e18, 1e18))},
			{name: "c_numeric_ps", sqlType: "numeric(16,2)", gen: edgeOr(0.4, numericPSEdges, decimal(14, 2))},
			{name: "c_numeric", sqlType: "numeric", gen: edgeOr(0.5, numericEdges, decimal(12, 6))},
			{name: "c_real", sqlType: "real", gen: edgeOr(0.4, realEdges, float32v)},
			{name: "c_double", sqlType: "double precision", gen: edgeOr(0.4, doubleEdges, float)},
			{name: "c_bool", sqlType: "boolean", gen: edgeOr(0.3, boolEdges, boolean)},
			{name: "c_varchar", sqlType: "varchar(10)", gen: edgeOr(0.5, varcharEdges, multiByte(10))},
			{name: "c_char", sqlType: "char(4)", gen: edgeOr(0.5, charEdges, word(1, 4))},
			{name: "c_text", sqlType: "text", gen: edgeOr(0.6, append(textEdges, hugeText(rand.New(rand.NewPCG(1, 2)))), word(0, 30))},
			{name: "c_json", sqlType: "json", gen: edgeOr(0.4, jsonEdges, jsonDoc)},
			{name: "c_jsonb", sqlType: "jsonb", gen: edgeOr(0.4, jsonEdges, jsonDoc)},
			{name: "c_int_array", sqlType: "integer[]", gen: edgeOr(0.4, intArrayEdges, intArray)},
			{name: "c_text_array", sqlType: "text[]", gen: edgeOr(0.4, textArrayEdges, textArray)},
			{name: "c_uuid", sqlType: "uuid", gen: edgeOr(0.2, uuidEdges, uuid)},
			{name: "c_bytea", sqlType: "bytea", gen: edgeOr(0.3, byteaEdges, bytea)},
			{name: "c_date", sqlType: "date", gen: edgeOr(0.4, dateEdges, date)},
			{name: "c_timestamp", sqlType: "timestamp", gen: edgeOr(0.4, timestampEdges, timestamp)},
			{name: "c_timestamptz", sqlType: "timestamptz", gen: edgeOr(0.4, timestamptzEdges, timestamptz)},
			{name: "c_time", sqlType: "time", gen: edgeOr(0.3, timeEdges, timeOfDay)},
			{name: "c_timetz", sqlType: "timetz", gen: edgeOr(0.3, timetzEdges, timetz)},
			{name: "c_interval", sqlType: "interval", gen: edgeOr(0.3, intervalEdges, interval)},
			{name: "c_enum", sqlType: enumType, gen: edgeOr(0.3, enumEdges, oneOf(enumLabels...))},
		},
	}
}

func sessions() *table {
	return &table{
		name:        TableSessions,
		keyCols:     []string{"id"},
		keyTypes:    []string{"bigint"},
		copyInserts: true,
		cols: []column{
			{name: "user_name", sqlType: "text", gen: edgeOr(0.2, textEdges, word(3, 12))},
			{name: "started_at", sqlType: "timestamptz", gen: timestamptz},
		},
	}
}

func late() *table {
	return &table{
		name:     TableLate,
		keyCols:  []string{"id"},
		keyTypes: []string{"bigint"},
		cols: []column{
			{name: "label", sqlType: "text", gen: edgeOr(0.2, textEdges, word(1, 10))},
			{name: "amount", sqlType: "numeric(8,3)", gen: decimal(5, 3)},
		},
	}
}

func measurements() *table {
	return &table{
		name:       TableMeasures,
		keyCols:    []string{"id", "bucket"},
		keyTypes:   []string{"bigint", "integer"},
		partitions: []string{"measurements_p0", "measurements_p1"},
		cols: []column{
			{name: "value", sqlType: "double precision", gen: float},
			{name: "tag", sqlType: "text", gen: word(1, 8)},
		},
	}
}
