package main

import (
	"reflect"
	"strings"
	"testing"
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
