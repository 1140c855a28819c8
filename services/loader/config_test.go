package main

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/redms/redms/pkg/typemap"
)

func TestConfigDefaultsAndValidate(t *testing.T) {
	t.Setenv("REDMS_WAREHOUSE_URL", "postgres://x@127.0.0.1/w")
	t.Setenv("REDMS_S3_BUCKET", "b")
	c, err := readConfig()
	if err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.WindowBytes != 64<<20 || c.WindowRecords != 200000 || c.LeaseTTL.String() != "15s" || c.MetricsAddr != ":9102" {
		t.Fatalf("defaults differ from docs/CONTRACTS.md: %+v", c)
	}
	if a := applyConfig(c); a.DistStyle != "key" || a.JSONSuper || a.ByteaVarbyte {
		t.Fatalf("Redshift type defaults: %+v", a)
	}
	c.RedshiftDistStyle, c.RedshiftJSON, c.RedshiftBytea = "EVEN", "super", "varbyte"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if a := applyConfig(c); a.DistStyle != "even" || !a.JSONSuper || !a.ByteaVarbyte {
		t.Fatalf("Redshift type settings: %+v", a)
	}
	c.WarehouseDialect = "mysql"
	c.ReplicaID = "a~b"
	c.S3AccessKeyID = "k"
	c.RedshiftDistStyle, c.RedshiftJSON, c.RedshiftBytea = "all", "json", "blob"
	err = c.Validate()
	for _, want := range []string{"REDMS_WAREHOUSE_DIALECT", "REDMS_REPLICA_ID", "REDMS_S3_SECRET_ACCESS_KEY",
		"REDMS_REDSHIFT_DISTSTYLE", "REDMS_REDSHIFT_JSON", "REDMS_REDSHIFT_BYTEA"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to name %s", err, want)
		}
	}
}

func TestEveryVariableIsDocumented(t *testing.T) {
	var check func(typ reflect.Type)
	check = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.Anonymous {
				check(f.Type) // the shared settings
				continue
			}
			if !f.IsExported() {
				continue // parsed by Validate
			}
			if f.Tag.Get("envconfig") == "" || f.Tag.Get("desc") == "" {
				t.Errorf("field %s lacks an envconfig or desc tag", f.Name)
			}
			if _, ok := f.Tag.Lookup("default"); !ok && f.Name != "MetricsAddr" {
				t.Errorf("field %s lacks a default tag", f.Name)
			}
		}
	}
	check(reflect.TypeFor[Config]())
	if !strings.Contains(defaultReplicaID(), "-") {
		t.Errorf("defaultReplicaID = %q", defaultReplicaID())
	}
}

// TestWarehouseSessionsNameTheReplica: the loader's warehouse sessions
// carry its replica id (the e2e lease overlap finds the paused replica by
// it), and a URL's own application_name wins.
func TestWarehouseSessionsNameTheReplica(t *testing.T) {
	for url, want := range map[string]string{
		"postgres://x@127.0.0.1:1/w":                      "redms-loader r-1",
		"postgres://x@127.0.0.1:1/w?application_name=etl": "etl",
	} {
		pool, err := warehousePool(context.Background(), Config{Warehouse: typemap.Warehouse{WarehouseURL: url}, ReplicaID: "r-1"})
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		got := pool.Config().ConnConfig.RuntimeParams["application_name"]
		pool.Close()
		if got != want {
			t.Errorf("%s: application_name %q, want %q", url, got, want)
		}
	}
}
