package deploycheck

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var update = flag.Bool("update", false, "rewrite README's Configuration reference from the Config structs")

// repoRoot is the repository root (this package's parent directory).
const repoRoot = ".."

// TestConfigReference fails when README's "Configuration reference" section
// is not what the services' envconfig structs generate; -update rewrites it.
func TestConfigReference(t *testing.T) {
	bins := loadBinaries(t)
	want := RenderReference(bins)
	path := filepath.Join(repoRoot, "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, UpdateReadme(readme, want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	_, got, err := SplitReadme(readme)
	if err != nil {
		t.Fatalf("%v: run `cd deploycheck && GOWORK=off go test -run TestConfigReference -update`", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("README's %s disagrees with the Config structs; run `cd deploycheck && GOWORK=off go test -run TestConfigReference -update`.\n%s",
			ReferenceHeading, firstDiff(got, want))
	}
}

// TestEveryVarDocumented fails when a variable has no desc tag: the reference
// would say nothing about it.
func TestEveryVarDocumented(t *testing.T) {
	for _, b := range loadBinaries(t) {
		for _, v := range b.Vars {
			if v.Desc == "" {
				t.Errorf("%s: %s has no desc tag in %s", b.Name, v.Name, b.Struct)
			}
		}
	}
}

// TestServicesHaveConfig pins which binaries must have a Config struct.
func TestServicesHaveConfig(t *testing.T) {
	bins := loadBinaries(t)
	for _, name := range []string{"redms-capture", "redms-loader"} {
		b, err := MustFind(bins, name)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, common := range []string{"REDMS_NATS_URL", "REDMS_METRICS_ADDR", "REDMS_LOG_LEVEL", "REDMS_SHUTDOWN_TIMEOUT", "REDMS_SENTRY_DSN"} {
			if _, ok := b.Var(common); !ok {
				t.Errorf("%s: no %s (docs/CONTRACTS.md lists it as common)", name, common)
			}
		}
	}
}

func loadBinaries(t *testing.T) []Binary {
	t.Helper()
	bins, err := Binaries(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	return bins
}

// firstDiff shows the first differing line of got and want.
func firstDiff(got, want []byte) string {
	g, w := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl []byte
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if !bytes.Equal(gl, wl) {
			return "line " + strconv.Itoa(i+1) + " of the section:\n  README:  " + string(gl) + "\n  structs: " + string(wl)
		}
	}
	return ""
}
