package workload

import (
	"fmt"
	"strings"
)

// QuoteIdent quotes a Postgres identifier, doubling embedded quotes.
func QuoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// QualifiedName is schema.table with both parts quoted.
func QualifiedName(schema, table string) string {
	return QuoteIdent(schema) + "." + QuoteIdent(table)
}

func createEnumSQL(schema string) string {
	labels := make([]string, len(enumLabels))
	for i, l := range enumLabels {
		labels[i] = "'" + strings.ReplaceAll(l, "'", "''") + "'"
	}
	return fmt.Sprintf("CREATE TYPE %s AS ENUM (%s)", QualifiedName(schema, enumType), strings.Join(labels, ", "))
}

// colType qualifies the enum type with the schema; other types are built in.
func colType(schema, sqlType string) string {
	if sqlType == enumType {
		return QualifiedName(schema, enumType)
	}
	return sqlType
}

func createTableSQL(schema string, t *table) []string {
	var defs []string
	for i, k := range t.keyCols {
		defs = append(defs, QuoteIdent(k)+" "+t.keyTypes[i]+" NOT NULL")
	}
	for _, c := range t.cols {
		defs = append(defs, QuoteIdent(c.name)+" "+colType(schema, c.sqlType))
	}
	keys := make([]string, len(t.keyCols))
	for i, k := range t.keyCols {
		keys[i] = QuoteIdent(k)
	}
	defs = append(defs, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
	stmt := fmt.Sprintf("CREATE TABLE %s (%s)", QualifiedName(schema, t.name), strings.Join(defs, ", "))
	if len(t.partitions) == 0 {
		return []string{stmt}
	}
	stmts := []string{stmt + " PARTITION BY RANGE (" + keys[len(keys)-1] + ")"}
	bounds := []string{"FROM (MINVALUE) TO (3)", "FROM (3) TO (MAXVALUE)"}
	for i, p := range t.partitions {
		stmts = append(stmts, fmt.Sprintf("CREATE TABLE %s PARTITION OF %s FOR VALUES %s",
			QualifiedName(schema, p), QualifiedName(schema, t.name), bounds[i]))
	}
	return stmts
}

// placeholder is a parameter passed as text and cast to the column's type,
// so every value travels in Postgres' own text input form.
func placeholder(n int, schema, sqlType string) string {
	return fmt.Sprintf("$%d::text::%s", n, colType(schema, sqlType))
}

// insertSQL inserts one row: key columns first, then cols.
func insertSQL(schema string, t *table, cols []column) string {
	names := make([]string, 0, len(t.keyCols)+len(cols))
	params := make([]string, 0, cap(names))
	for i, k := range t.keyCols {
		names = append(names, QuoteIdent(k))
		params = append(params, placeholder(len(params)+1, schema, t.keyTypes[i]))
	}
	for _, c := range cols {
		names = append(names, QuoteIdent(c.name))
		params = append(params, placeholder(len(params)+1, schema, c.sqlType))
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)",
		QualifiedName(schema, t.name), strings.Join(names, ", "), strings.Join(params, ", "))
}

// keyWhere matches the key columns against parameters from $first on.
func keyWhere(schema string, t *table, first int) string {
	conds := make([]string, len(t.keyCols))
	for i, k := range t.keyCols {
		conds[i] = QuoteIdent(k) + " = " + placeholder(first+i, schema, t.keyTypes[i])
	}
	return strings.Join(conds, " AND ")
}

// updateSQL sets cols ($1..) of the row whose key follows them.
func updateSQL(schema string, t *table, cols []column) string {
	sets := make([]string, len(cols))
	for i, c := range cols {
		sets[i] = QuoteIdent(c.name) + " = " + placeholder(i+1, schema, c.sqlType)
	}
	return fmt.Sprintf("UPDATE %s SET %s WHERE %s",
		QualifiedName(schema, t.name), strings.Join(sets, ", "), keyWhere(schema, t, len(cols)+1))
}

// rekeySQL moves a row to a new key: new key values first, then the old key.
func rekeySQL(schema string, t *table) string {
	sets := make([]string, len(t.keyCols))
	for i, k := range t.keyCols {
		sets[i] = QuoteIdent(k) + " = " + placeholder(i+1, schema, t.keyTypes[i])
	}
	return fmt.Sprintf("UPDATE %s SET %s WHERE %s",
		QualifiedName(schema, t.name), strings.Join(sets, ", "), keyWhere(schema, t, len(t.keyCols)+1))
}

func deleteSQL(schema string, t *table) string {
	return fmt.Sprintf("DELETE FROM %s WHERE %s", QualifiedName(schema, t.name), keyWhere(schema, t, 1))
}

func addColumnSQL(schema, tbl string, c column) string {
	return fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", QualifiedName(schema, tbl), QuoteIdent(c.name), colType(schema, c.sqlType))
}

func dropColumnSQL(schema, tbl, col string) string {
	return fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", QualifiedName(schema, tbl), QuoteIdent(col))
}

func retypeColumnSQL(schema, tbl, col, sqlType string) string {
	return fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s", QualifiedName(schema, tbl), QuoteIdent(col), sqlType)
}

func truncateSQL(schema string, tables ...string) string {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = QualifiedName(schema, t)
	}
	return "TRUNCATE " + strings.Join(names, ", ")
}
