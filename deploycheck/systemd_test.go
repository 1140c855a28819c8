package deploycheck

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var unitFiles = []string{"redms-capture.service", "redms-loader@.service"}

// unit is a parsed unit file: section → key → values in file order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not key=value inside a section: %q", path, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

func (u unit) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// TestSystemdUnitKeys asserts what the units promise an operator: env files,
// restart, a stop timeout above the services' own shutdown timeout, a
// dedicated user and the hardening set.
func TestSystemdUnitKeys(t *testing.T) {
	bins := loadBinaries(t)
	for _, name := range unitFiles {
		u := parseUnit(t, filepath.Join(repoRoot, "deploy/systemd", name))
		bin := "redms-capture"
		envFiles := []string{"/etc/redms/capture.env"}
		if strings.HasPrefix(name, "redms-loader") {
			bin = "redms-loader"
			envFiles = []string{"/etc/redms/loader.env", "/etc/redms/loader-%i.env"}
		}
		want := map[string]string{
			"ExecStart":        "/usr/local/bin/" + bin,
			"Restart":          "always",
			"User":             "redms",
			"Group":            "redms",
			"NoNewPrivileges":  "yes",
			"ProtectSystem":    "strict",
			"ProtectHome":      "yes",
			"PrivateTmp":       "yes",
			"StateDirectory":   "redms",
			"LogsDirectory":    "redms",
			"KillSignal":       "SIGTERM",
			"WorkingDirectory": "/var/lib/redms",
		}
		for k, v := range want {
			if got := u.get("Service", k); got != v {
				t.Errorf("%s: [Service] %s=%q, want %q", name, k, got, v)
			}
		}
		if got := u["Service"]["EnvironmentFile"]; strings.Join(got, " ") != strings.Join(envFiles, " ") {
			t.Errorf("%s: EnvironmentFile=%v, want %v", name, got, envFiles)
		}
		if u.get("Install", "WantedBy") != "multi-user.target" {
			t.Errorf("%s: [Install] WantedBy=multi-user.target missing", name)
		}
		if out := u.get("Service", "StandardOutput"); !strings.HasPrefix(out, "append:/var/log/redms/") {
			t.Errorf("%s: StandardOutput=%q; the CloudWatch agent tails /var/log/redms/*.log", name, out)
		}
		stop, err := time.ParseDuration(u.get("Service", "TimeoutStopSec"))
		if err != nil {
			t.Errorf("%s: TimeoutStopSec: %v", name, err)
			continue
		}
		b, err := MustFind(bins, bin)
		if err != nil {
			t.Error(err)
			continue
		}
		v, ok := b.Var("REDMS_SHUTDOWN_TIMEOUT")
		if !ok {
			t.Errorf("%s has no REDMS_SHUTDOWN_TIMEOUT", bin)
			continue
		}
		shutdown, err := time.ParseDuration(v.Default)
		if err != nil {
			t.Errorf("%s REDMS_SHUTDOWN_TIMEOUT default %q: %v", bin, v.Default, err)
			continue
		}
		if stop < shutdown+5*time.Second {
			t.Errorf("%s: TimeoutStopSec=%s leaves less than 5s margin over REDMS_SHUTDOWN_TIMEOUT=%s", name, stop, shutdown)
		}
	}
}

// TestSystemdAnalyzeVerify runs `systemd-analyze verify` on both units in a
// throwaway root: the machine's system units (for the targets they name)
// plus stub executables at the ExecStart paths. Any warning fails the test,
// since verify exits 0 on unknown keys and bad values.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found: apt-get install systemd")
	}
	root := t.TempDir()
	sysUnits := ""
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(d, "multi-user.target")); err == nil {
			sysUnits = d
			break
		}
	}
	if sysUnits == "" {
		t.Fatal("no multi-user.target in /usr/lib/systemd/system: apt-get install systemd")
	}
	if err := copyTree(sysUnits, filepath.Join(root, "usr/lib/systemd/system")); err != nil {
		t.Fatal(err)
	}
	unitDir := filepath.Join(root, "etc/systemd/system")
	for _, name := range unitFiles {
		u := parseUnit(t, filepath.Join(repoRoot, "deploy/systemd", name))
		exe := strings.Fields(u.get("Service", "ExecStart"))[0]
		stub := filepath.Join(root, exe)
		if err := os.MkdirAll(filepath.Dir(stub), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(stub, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := copyFile(filepath.Join(repoRoot, "deploy/systemd", name), filepath.Join(unitDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, "verify", "--man=no", "--root="+root, "redms-capture.service", "redms-loader@1.service")
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			return copyFile(path, target)
		}
		return nil
	})
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}
