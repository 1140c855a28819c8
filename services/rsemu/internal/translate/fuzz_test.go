package translate

import (
	"testing"

	"github.com/redms/redms/services/rsemu/internal/sqltok"
)

// FuzzTranslate: any input translates or fails with an error, never
// panics, and translated SQL tokenizes again.
func FuzzTranslate(f *testing.F) {
	for _, s := range []string{
		`CREATE TABLE "S"."T" ("Id" BIGINT NOT NULL, v VARCHAR(10) DEFAULT 'x', n NUMERIC(19,8), PRIMARY KEY ("Id")) DISTSTYLE KEY SORTKEY (v)`,
		`CREATE TEMP TABLE x (LIKE t)`, `ALTER TABLE t ALTER COLUMN v TYPE VARCHAR(20)`, `ALTER TABLE t ADD COLUMN a INT REFERENCES x (`,
		`COPY t (a, b) FROM 's3://b/k' IAM_ROLE 'arn:aws:iam::123456789012:role/r' MANIFEST GZIP CSV NULL AS '\\N' MAXERROR 3`,
		`MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (1)`,
		`SELECT pg_last_copy_count()`, `SET enable_case_sensitive_identifier TO true`, `CREATE TABLE t (a int IDENTITY(`,
		`INSERT INTO t VALUES ('a\'b') ON CONFLICT DO NOTHING`, `SELECT $$x$$, E'\\', "a""b"`,
	} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, sql string, caseSensitive bool) {
		parts, err := Split(sql)
		if err != nil {
			return
		}
		for _, p := range parts {
			st, err := Translate(p, Options{CaseSensitive: caseSensitive})
			if err != nil {
				continue
			}
			if _, err := sqltok.Tokenize(st.SQL); err != nil {
				t.Fatalf("%q translated to %q, which does not tokenize: %v", sql, st.SQL, err)
			}
		}
	})
}
