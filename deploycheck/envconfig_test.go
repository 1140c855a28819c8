package deploycheck

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestSplitWords(t *testing.T) {
	for in, want := range map[string]string{
		"MaxInflight": "Max_Inflight",
		"NATSURL":     "NATSURL",
		"S3Bucket":    "S3_Bucket",
		"SourceURL":   "Source_URL",
		"Slot":        "Slot",
	} {
		if got := splitWords(in); got != want {
			t.Errorf("splitWords(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLoadBinary pins envconfig's naming rules on a fixture service: tags,
// untagged and split_words fields, embedded and named structs from the same
// package and from this repository's pkg/, ignored and unexported fields.
func TestLoadBinary(t *testing.T) {
	root := t.TempDir()
	write(t, root, "pkg/common/common.go", `package common
import "time"
type Common struct {
	NATSURL string        `+"`envconfig:\"NATS_URL\" default:\"nats://x\" desc:\"nats\"`"+`
	Timeout time.Duration `+"`default:\"20s\" desc:\"t\"`"+`
}`)
	write(t, root, "services/demo/config.go", `package main
import c "github.com/redms/redms/pkg/common"
type S3 struct {
	Bucket string `+"`required:\"true\" desc:\"b\"`"+`
}
type Config struct {
	c.Common
	MaxInflight int `+"`split_words:\"true\" default:\"4\" desc:\"m\"`"+`
	Tables []string `+"`envconfig:\"TABLES\" desc:\"list\"`"+`
	Store S3
	Skip string `+"`ignored:\"true\"`"+`
	hidden string
}`)
	write(t, root, "services/demo/internal/x/x.go", `package x
type Config struct{ Other string `+"`envconfig:\"OTHER\"`"+` }`)
	b, ok, err := LoadBinary(root, "services/demo")
	if err != nil || !ok {
		t.Fatalf("LoadBinary: ok=%v err=%v", ok, err)
	}
	want := []Var{
		{Name: "REDMS_NATS_URL", Default: "nats://x", Desc: "nats", Type: "string"},
		{Name: "REDMS_TIMEOUT", Default: "20s", Desc: "t", Type: "duration"},
		{Name: "REDMS_MAX_INFLIGHT", Default: "4", Desc: "m", Type: "integer"},
		{Name: "REDMS_TABLES", Desc: "list", Type: "list of string (comma-separated)"},
		{Name: "REDMS_STORE_BUCKET", Desc: "b", Type: "string", Required: true},
	}
	if !reflect.DeepEqual(b.Vars, want) {
		t.Errorf("vars:\n got %+v\nwant %+v", b.Vars, want)
	}
	if b.Struct != "services/demo/config.go" || b.Name != "redms-demo" {
		t.Errorf("binary %q declared in %q", b.Name, b.Struct)
	}
}

// TestLoadBinaryProcessCall: the struct and prefix main passes to
// envconfig.Process win over a type named Config.
func TestLoadBinaryProcessCall(t *testing.T) {
	root := t.TempDir()
	write(t, root, "services/emu/main.go", `package main
import "github.com/kelseyhightower/envconfig"
type env struct {
	Listen string `+"`envconfig:\"LISTEN\" default:\":5439\" desc:\"l\"`"+`
}
func run() error {
	var e env
	return envconfig.Process("redms_rsemu", &e)
}`)
	b, ok, err := LoadBinary(root, "services/emu")
	if err != nil || !ok {
		t.Fatalf("LoadBinary: ok=%v err=%v", ok, err)
	}
	want := []Var{{Name: "REDMS_RSEMU_LISTEN", Default: ":5439", Desc: "l", Type: "string"}}
	if !reflect.DeepEqual(b.Vars, want) {
		t.Errorf("vars:\n got %+v\nwant %+v", b.Vars, want)
	}
}

func write(t *testing.T, root, rel, text string) {
	t.Helper()
	path := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
