package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kelseyhightower/envconfig"
)

func TestParseTableKeys(t *testing.T) {
	got, err := ParseTableKeys(" public.orders=id ; public.lines = order_id, line;")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"public.orders": {"id"}, "public.lines": {"order_id", "line"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseTableKeys = %v, want %v", got, want)
	}
	for _, bad := range []string{"orders=id", "public.orders", "public.orders=", "=id"} {
		if _, err := ParseTableKeys(bad); err == nil {
			t.Errorf("ParseTableKeys(%q) accepted", bad)
		}
	}
}

func TestConfigDefaultsAndValidate(t *testing.T) {
	t.Setenv("REDMS_WAREHOUSE_URL", "postgres://x@127.0.0.1/w")
	t.Setenv("REDMS_S3_BUCKET", "b")
	var c Config
	if err := envconfig.Process("REDMS", &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.WindowBytes != 64<<20 || c.WindowRecords != 200000 || c.LeaseTTL.String() != "15s" || c.MetricsAddr != ":9102" {
		t.Fatalf("defaults differ from docs/CONTRACTS.md: %+v", c)
	}
	c.WarehouseDialect = "mysql"
	c.ReplicaID = "a~b"
	c.S3AccessKeyID = "k"
	err := c.Validate()
	for _, want := range []string{"REDMS_WAREHOUSE_DIALECT", "REDMS_REPLICA_ID", "REDMS_S3_SECRET_ACCESS_KEY"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to name %s", err, want)
		}
	}
}

func TestEveryVariableIsDocumented(t *testing.T) {
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Tag.Get("envconfig") == "" || f.Tag.Get("desc") == "" {
			t.Errorf("field %s lacks an envconfig or desc tag", f.Name)
		}
		if _, ok := f.Tag.Lookup("default"); !ok {
			t.Errorf("field %s lacks a default tag", f.Name)
		}
	}
	if !strings.Contains(defaultReplicaID(), "-") {
		t.Errorf("defaultReplicaID = %q", defaultReplicaID())
	}
}
