package catalog

import (
	"context"

	"github.com/redms/redms/pkg/tablekeys"
	"github.com/redms/redms/pkg/walheader"
)

// Live resolves tables from the source catalog; a table the catalog gives no
// key falls back to the configured keys (REDMS_TABLE_KEYS).
type Live struct {
	Q    Querier
	Keys tablekeys.Keys
}

// Resolve implements change.Resolver.
func (l Live) Resolve(ctx context.Context, t Name) (Info, error) {
	info, err := Lookup(ctx, l.Q, t)
	if err != nil {
		return Info{}, err
	}
	if info.KeySource == SourceNone {
		if k, ok := l.Keys[configured(t)]; ok {
			info.Keys, info.KeySource = k, SourceConfig
		}
	}
	return info, nil
}

// Partition implements change.Resolver: see Partition.
func (l Live) Partition(ctx context.Context, tables []Name) (*walheader.Partition, error) {
	return Partition(ctx, l.Q, tables)
}

// DefaultKey is the key column assumed when nothing else is known (--stdin).
const DefaultKey = "id"

// Static resolves tables without a database (--stdin): configured keys, else
// a column named id. Every table is its own root.
type Static struct {
	Keys tablekeys.Keys
}

// Resolve implements change.Resolver.
func (s Static) Resolve(_ context.Context, t Name) (Info, error) {
	if k, ok := s.Keys[configured(t)]; ok {
		return Info{Root: t, Keys: k, KeySource: SourceConfig}, nil
	}
	return Info{Root: t, Keys: []string{DefaultKey}, KeySource: SourceDefault}, nil
}

// Partition implements change.Resolver: without a catalog every table is
// its own root, so a TRUNCATE empties it.
func (Static) Partition(context.Context, []Name) (*walheader.Partition, error) { return nil, nil }

// configured is t as REDMS_TABLE_KEYS names it.
func configured(t Name) tablekeys.Table { return tablekeys.Table{Schema: t.Schema, Name: t.Table} }
