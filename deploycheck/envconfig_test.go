package deploycheck

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
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

// TestLoadBinaryReadEnv: a binary whose main reads its Config with
// service.ReadEnv, embedding shared settings that get a per-binary default
// from a defaults tag.
func TestLoadBinaryReadEnv(t *testing.T) {
	root := t.TempDir()
	write(t, root, "pkg/service/settings.go", `package service
type Settings struct {
	MetricsAddr string `+"`envconfig:\"METRICS_ADDR\" desc:\"m\"`"+`
	LogLevel    string `+"`envconfig:\"LOG_LEVEL\" default:\"info\" desc:\"l\"`"+`
}`)
	write(t, root, "services/demo/config.go", `package main
import "github.com/redms/redms/pkg/service"
type Config struct {
	service.Settings `+"`defaults:\"METRICS_ADDR=:9101\"`"+`
	Slot string `+"`envconfig:\"SLOT\" default:\"redms\" desc:\"s\"`"+`
	parsed []string
}
type Other struct{ X string `+"`envconfig:\"X\"`"+` }
func readConfig() (Config, error) {
	var cfg Config
	err := service.ReadEnv("REDMS", &cfg)
	return cfg, err
}`)
	b, ok, err := LoadBinary(root, "services/demo")
	if err != nil || !ok {
		t.Fatalf("LoadBinary: ok=%v err=%v", ok, err)
	}
	want := []Var{
		{Name: "REDMS_METRICS_ADDR", Default: ":9101", Desc: "m", Type: "string"},
		{Name: "REDMS_LOG_LEVEL", Default: "info", Desc: "l", Type: "string"},
		{Name: "REDMS_SLOT", Default: "redms", Desc: "s", Type: "string"},
	}
	if !reflect.DeepEqual(b.Vars, want) {
		t.Errorf("vars:\n got %+v\nwant %+v", b.Vars, want)
	}
	write(t, root, "services/demo/config.go", `package main
import "github.com/redms/redms/pkg/service"
type Config struct {
	service.Settings `+"`defaults:\"METRICS_PORT=9101\"`"+`
	Slot string `+"`envconfig:\"SLOT\"`"+`
}`)
	if _, _, err := LoadBinary(root, "services/demo"); err == nil || !strings.Contains(err.Error(), "METRICS_PORT") {
		t.Errorf("LoadBinary with a default for an undeclared key: %v, want an error naming it", err)
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

// TestLoadBinaryReadConfig: service.ReadConfig(prefix, &v, validate) names
// the struct as ReadEnv does, with the defaults of its embedded settings.
func TestLoadBinaryReadConfig(t *testing.T) {
	root := t.TempDir()
	write(t, root, "pkg/service/settings.go", `package service
type Settings struct {
	MetricsAddr string `+"`envconfig:\"METRICS_ADDR\" desc:\"m\"`"+`
}`)
	write(t, root, "services/tool/config.go", `package main
import "github.com/redms/redms/pkg/service"
type settings struct {
	service.Settings `+"`defaults:\"METRICS_ADDR=:9109\"`"+`
	Table string `+"`envconfig:\"TABLE\" default:\"t\" desc:\"x\"`"+`
}
type Config struct{ Decoy string `+"`envconfig:\"DECOY\"`"+` }
func (s *settings) Validate() error { return nil }
func read() (settings, error) {
	var s settings
	err := service.ReadConfig("REDMS", &s, s.Validate)
	return s, err
}`)
	b, ok, err := LoadBinary(root, "services/tool")
	if err != nil || !ok {
		t.Fatalf("LoadBinary: ok=%v err=%v", ok, err)
	}
	want := []Var{
		{Name: "REDMS_METRICS_ADDR", Default: ":9109", Desc: "m", Type: "string"},
		{Name: "REDMS_TABLE", Default: "t", Desc: "x", Type: "string"},
	}
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
