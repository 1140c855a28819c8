package compare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redms/redms/pkg/snaprequest"
	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/verify/internal/checksum"
)

// RepairRanges are the key ranges an on-demand snapshot must replace so
// that the warehouse holds tr's table as the source does (docs/DESIGN.md
// §8): per differing key k the range (p, k], p the greatest source key
// below k (unbounded when none), so a range replace rewrites k from the
// source — deleting it when the source lacks it, which a --where filter
// would not. A range may cover keys that are equal; replacing them changes
// nothing. whole is true when only the whole table can be named: a keyless
// table, a missing target, a NULL key, or more differences than listed.
func RepairRanges(ctx context.Context, src *pgxpool.Pool, tr TableResult) (ranges []snaprequest.Range, whole bool, err error) {
	if tr.Keyless || tr.TargetMissing || len(tr.Keys) == 0 || tr.Differences() > len(tr.Diffs) {
		return nil, true, nil
	}
	n := ParseName(tr.Table)
	declared, locales, err := keyTypes(ctx, src, n, tr.Keys)
	if err != nil {
		return nil, false, err
	}
	sql := lowerKeySQL(n, tr.Keys, declared, locales)
	seen := map[string]bool{}
	for _, d := range tr.Diffs {
		to := make(walheader.Key, len(tr.Keys))
		args := make([]any, len(tr.Keys))
		for i, k := range tr.Keys {
			v := d.Key[k]
			if v == nil {
				return nil, true, nil // a row comparison with NULL is never true
			}
			to[i], args[i] = v, *v
		}
		from := make(walheader.Key, len(tr.Keys))
		dst := make([]any, len(from))
		for i := range from {
			dst[i] = &from[i]
		}
		switch err := src.QueryRow(ctx, sql, args...).Scan(dst...); {
		case errors.Is(err, pgx.ErrNoRows):
			from = nil // k is below every source key
		case err != nil:
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
				return nil, true, nil // a warehouse key the source type cannot hold
			}
			return nil, false, fmt.Errorf("read the source key below %s of %s: %w", d.KeyString(tr.Keys), tr.Table, err)
		}
		r := snaprequest.Range{From: from, To: to}
		b, err := json.Marshal(r)
		if err != nil {
			return nil, false, fmt.Errorf("encode a range of %s: %w", tr.Table, err)
		}
		if id := string(b); !seen[id] {
			seen[id] = true
			ranges = append(ranges, r)
		}
	}
	return ranges, false, nil
}

// lowerKeySQL selects the greatest key of n below the one given as $1..
// (one per key column), as text, in the order capture reads a snapshot's
// ranges in, the warehouse's (typemap.SortKey; a key column compares by
// its declared type, or by its text under collation "C"). Aliased: ORDER
// BY a column's name must mean the column, not its text (which sorts 999
// after 3001).
func lowerKeySQL(n Name, keys, declared, locales []string) string {
	cols := make([]string, len(keys))
	params := make([]string, len(keys))
	desc := make([]string, len(keys))
	texts := make([]string, len(keys))
	for i, k := range keys {
		sort, bound, _ := typemap.SortKey(checksum.Ident(k), declared[i], locales[i])
		cols[i] = sort
		params[i] = "$" + strconv.Itoa(i+1) + "::" + bound
		desc[i] = sort + " DESC"
		texts[i] = checksum.Ident(k) + "::text AS k" + strconv.Itoa(i)
	}
	return "SELECT " + strings.Join(texts, ", ") + " FROM " + checksum.Ident(n.Schema) + "." + checksum.Ident(n.Table) +
		" WHERE (" + strings.Join(cols, ", ") + ") < (" + strings.Join(params, ", ") + ")" +
		" ORDER BY " + strings.Join(desc, ", ") + " LIMIT 1"
}

// keyTypes are the declared source types of keys and the locales they
// compare by.
func keyTypes(ctx context.Context, src *pgxpool.Pool, n Name, keys []string) (declared, locales []string, err error) {
	rows, err := src.Query(ctx, sourceColumnsSQL, checksum.Ident(n.Schema)+"."+checksum.Ident(n.Table))
	if err != nil {
		return nil, nil, fmt.Errorf("read source columns of %s: %w", n, err)
	}
	types, locale := map[string]string{}, map[string]string{}
	for rows.Next() {
		var name, printed, decl, loc string
		var key, full bool
		if err := rows.Scan(&name, &printed, &decl, &key, &full, &loc); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("read source columns of %s: %w", n, err)
		}
		types[name], locale[name] = decl, loc
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read source columns of %s: %w", n, err)
	}
	declared, locales = make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		if declared[i] = types[k]; declared[i] == "" {
			return nil, nil, fmt.Errorf("key column %s is no longer a column of %s", k, n)
		}
		locales[i] = locale[k]
	}
	return declared, locales, nil
}

// Applied is the applied position of n's target in the warehouse state;
// ok is false when the warehouse has no state for it (not loaded by redms).
func Applied(ctx context.Context, wh *pgxpool.Pool, n Name, opts Options) (pos walheader.Pos, ok bool, err error) {
	opts.defaults()
	target := n.Schema
	if opts.TargetSchema != "" {
		target = opts.TargetSchema
	}
	var text string
	err = wh.QueryRow(ctx, "SELECT pos FROM "+stateTable(opts.StateSchema, target, n.Table), pgx.QueryExecModeExec).Scan(&text)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42P01", errors.Is(err, pgx.ErrNoRows):
		return pos, false, nil
	case err != nil:
		return pos, false, fmt.Errorf("read applied position of %s: %w", n, err)
	}
	if pos, err = walheader.ParsePos(text); err != nil {
		return pos, false, fmt.Errorf("applied position of %s: %w", n, err)
	}
	return pos, true, nil
}
