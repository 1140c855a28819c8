package typemap

import (
	"strings"
	"testing"

	"github.com/kelseyhightower/envconfig"
)

func TestWarehouseParse(t *testing.T) {
	t.Setenv("REDMS_WAREHOUSE_URL", "postgres://x@127.0.0.1/w")
	var w Warehouse
	if err := envconfig.Process("REDMS", &w); err != nil {
		t.Fatal(err)
	}
	d, opt, err := w.Parse()
	if err != nil {
		t.Fatalf("defaults do not parse: %v", err)
	}
	if d != Postgres || opt != (Options{NumericDefault: DefaultNumeric}) || w.StateSchema != "public" || w.TargetSchema != "" {
		t.Fatalf("defaults: %s %+v %+v", d, opt, w)
	}

	w.WarehouseDialect, w.NumericDefault, w.RedshiftJSON, w.RedshiftBytea = "redshift", "12,2", "super", "varbyte"
	d, opt, err = w.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if want := (Options{NumericDefault: Numeric{12, 2}, JSONSuper: true, ByteaVarbyte: true}); d != Redshift || opt != want {
		t.Fatalf("Parse = %s %+v, want redshift %+v", d, opt, want)
	}

	w = Warehouse{WarehouseDialect: "mysql", NumericDefault: "40,2", RedshiftJSON: "json", RedshiftBytea: "blob"}
	_, _, err = w.Parse()
	for _, want := range []string{"REDMS_WAREHOUSE_URL", "REDMS_WAREHOUSE_DIALECT", "REDMS_NUMERIC_DEFAULT", "REDMS_REDSHIFT_JSON", "REDMS_REDSHIFT_BYTEA"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse = %v, want it to name %s", err, want)
		}
	}
}
