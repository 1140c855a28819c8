package catalog

import "context"

// Live resolves tables from the source catalog; a table the catalog gives no
// key falls back to the configured keys.
type Live struct {
	Q    Querier
	Keys TableKeys
}

// Resolve implements change.Resolver.
func (l Live) Resolve(ctx context.Context, t Name) (Info, error) {
	info, err := Lookup(ctx, l.Q, t)
	if err != nil {
		return Info{}, err
	}
	if info.KeySource == SourceNone {
		if k, ok := l.Keys[t]; ok {
			info.Keys, info.KeySource = k, SourceConfig
		}
	}
	return info, nil
}

// DefaultKey is the key column assumed when nothing else is known (--stdin).
const DefaultKey = "id"

// Static resolves tables without a database (--stdin): configured keys, else
// a column named id. Every table is its own root.
type Static struct {
	Keys TableKeys
}

// Resolve implements change.Resolver.
func (s Static) Resolve(_ context.Context, t Name) (Info, error) {
	if k, ok := s.Keys[t]; ok {
		return Info{Root: t, Keys: k, KeySource: SourceConfig}, nil
	}
	return Info{Root: t, Keys: []string{DefaultKey}, KeySource: SourceDefault}, nil
}
