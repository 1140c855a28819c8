package deploycheck

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const ansibleDir = "deploy/ansible"

func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: apt-get install ansible ansible-lint", name)
	}
	return p
}

// localInventory writes an inventory whose group redms is this machine,
// reached without ssh.
func localInventory(t *testing.T, dir string) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 not found: apt-get install ansible")
	}
	inv := filepath.Join(dir, "inventory.ini")
	text := "[redms]\nlocalhost ansible_connection=local ansible_python_interpreter=" + py + "\n"
	if err := os.WriteFile(inv, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return inv
}

func runIn(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0", "NO_COLOR=1",
		"ANSIBLE_LOCAL_TEMP="+t.TempDir(), "ANSIBLE_RETRY_FILES_ENABLED=0", "ANSIBLE_PIPELINING=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAnsibleSyntax: ansible-playbook --syntax-check of the playbook.
func TestAnsibleSyntax(t *testing.T) {
	t.Parallel()
	bin := lookTool(t, "ansible-playbook")
	inv := localInventory(t, t.TempDir())
	runIn(t, filepath.Join(repoRoot, ansibleDir), bin, "--syntax-check", "-i", inv, "playbook.yml")
}

// TestAnsibleLint: ansible-lint's production profile over the playbook,
// role and example vars (offline: no collections are fetched).
func TestAnsibleLint(t *testing.T) {
	t.Parallel()
	bin := lookTool(t, "ansible-lint")
	runIn(t, filepath.Join(repoRoot, ansibleDir), bin, "--offline", "--profile", "production", "-p", "--nocolor")
}

var recap = regexp.MustCompile(`(?m)^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

// TestAnsibleRoleRun applies the playbook to this machine with vars/example.yml
// and every path aimed at a throwaway root (no user created, no unit
// started), twice: the second run must change nothing. Then it reads what
// the role wrote: every REDMS_* variable in the env files is one the binary
// reads, the units are deploy/systemd's, and the CloudWatch files match
// deploy/cloudwatch.
func TestAnsibleRoleRun(t *testing.T) {
	t.Parallel()
	bin := lookTool(t, "ansible-playbook")
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	src := filepath.Join(tmp, "bin")
	for _, d := range []string{src, filepath.Join(root, "etc/logrotate.d")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []string{"redms-capture", "redms-loader"} {
		if err := os.WriteFile(filepath.Join(src, b), []byte("#!/bin/sh\n# stub "+b+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	overrides := map[string]any{
		"redms_bin_dir":               filepath.Join(root, "usr/local/bin"),
		"redms_config_dir":            filepath.Join(root, "etc/redms"),
		"redms_systemd_dir":           filepath.Join(root, "etc/systemd/system"),
		"redms_logrotate_dir":         filepath.Join(root, "etc/logrotate.d"),
		"redms_binaries_src":          src,
		"redms_manage_user":           false,
		"redms_manage_services":       false,
		"redms_user":                  "root",
		"redms_group":                 "root",
		"redms_cloudwatch_enabled":    true,
		"redms_cloudwatch_config_dir": filepath.Join(root, "opt/aws/amazon-cloudwatch-agent/etc"),
	}
	raw, _ := json.Marshal(overrides)
	varsFile := filepath.Join(tmp, "overrides.json")
	if err := os.WriteFile(varsFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	inv := localInventory(t, tmp)
	dir := filepath.Join(repoRoot, ansibleDir)
	args := []string{"-i", inv, "playbook.yml", "-e", "@vars/example.yml", "-e", "@" + varsFile}
	first := runIn(t, dir, bin, args...)
	if m := recap.FindStringSubmatch(first); m == nil || m[2] == "0" || m[4] != "0" {
		t.Fatalf("first run: want changes and no failure:\n%s", first)
	}
	second := runIn(t, dir, bin, args...)
	if m := recap.FindStringSubmatch(second); m == nil || m[2] != "0" || m[4] != "0" {
		t.Errorf("second run is not idempotent (want changed=0):\n%s", second)
	}

	bins := loadBinaries(t)
	for file, binName := range map[string]string{
		"capture.env": "redms-capture", "loader.env": "redms-loader",
		"loader-1.env": "redms-loader", "loader-2.env": "redms-loader",
	} {
		env := readEnvFile(t, filepath.Join(root, "etc/redms", file))
		b, err := MustFind(bins, binName)
		if err != nil {
			t.Error(err)
			continue
		}
		for k := range env {
			if _, ok := b.Var(k); !ok {
				t.Errorf("%s sets %s, which %s's Config (%s) does not read", file, k, binName, b.Struct)
			}
		}
	}
	if env := readEnvFile(t, filepath.Join(root, "etc/redms/capture.env")); !strings.Contains(env["REDMS_SOURCE_URL"], "source.example.internal") {
		t.Errorf("capture.env REDMS_SOURCE_URL = %q, want the vars/example.yml value", env["REDMS_SOURCE_URL"])
	}
	for n, addr := range map[string]string{"1": ":9102", "2": ":9103"} {
		if got := readEnvFile(t, filepath.Join(root, "etc/redms/loader-"+n+".env"))["REDMS_METRICS_ADDR"]; got != addr {
			t.Errorf("loader-%s.env REDMS_METRICS_ADDR = %q, want %q", n, got, addr)
		}
	}
	for _, u := range unitFiles {
		sameFile(t, filepath.Join(repoRoot, "deploy/systemd", u), filepath.Join(root, "etc/systemd/system", u))
	}
	for _, b := range []string{"redms-capture", "redms-loader"} {
		sameFile(t, filepath.Join(src, b), filepath.Join(root, "usr/local/bin", b))
	}
	cw := filepath.Join(root, "opt/aws/amazon-cloudwatch-agent/etc")
	sameFile(t, filepath.Join(repoRoot, "deploy/cloudwatch/amazon-cloudwatch-agent.json"), filepath.Join(cw, "amazon-cloudwatch-agent.json"))
	if got, want := scrapeTargets(t, filepath.Join(cw, "redms-prometheus.yml")), scrapeTargets(t, filepath.Join(repoRoot, "deploy/cloudwatch/prometheus.yml")); !equalTargets(got, want) {
		t.Errorf("rendered redms-prometheus.yml scrapes %v, deploy/cloudwatch/prometheus.yml %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/logrotate.d/redms")); err != nil {
		t.Error(err)
	}
}

// readEnvFile reads KEY="value" lines as the role writes them.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: line %q is not KEY=value", path, line)
			continue
		}
		env[k] = strings.Trim(v, `"`)
	}
	return env
}

func sameFile(t *testing.T, want, got string) {
	t.Helper()
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(got)
	if err != nil {
		t.Errorf("role did not install %s: %v", filepath.Base(got), err)
		return
	}
	if string(w) != string(g) {
		t.Errorf("%s differs from %s", got, want)
	}
}

// scrapeTargets reads job → targets from a Prometheus config.
func scrapeTargets(t *testing.T, path string) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string][]string{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			out[sc.JobName] = append(out[sc.JobName], st.Targets...)
		}
	}
	return out
}

func equalTargets(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestPrometheusScrapeConfig: deploy/cloudwatch/prometheus.yml scrapes both
// services on the ports their Config defaults and the loader units use.
func TestPrometheusScrapeConfig(t *testing.T) {
	targets := scrapeTargets(t, filepath.Join(repoRoot, "deploy/cloudwatch/prometheus.yml"))
	if len(targets["redms-capture"]) == 0 || len(targets["redms-loader"]) == 0 {
		t.Fatalf("want jobs redms-capture and redms-loader, got %v", targets)
	}
	bins := loadBinaries(t)
	if b, err := MustFind(bins, "redms-capture"); err == nil {
		v, _ := b.Var("REDMS_METRICS_ADDR")
		if !strings.HasSuffix(targets["redms-capture"][0], v.Default) {
			t.Errorf("capture target %s does not use REDMS_METRICS_ADDR's default %q", targets["redms-capture"][0], v.Default)
		}
	} else {
		t.Error(err)
	}
}

// TestAnsibleExampleHasNoSecrets: vars/example.yml holds placeholders only;
// every credential-bearing value comes from a vault_* variable or says
// CHANGE-ME.
func TestAnsibleExampleHasNoSecrets(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, ansibleDir, "vars/example.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var vars map[string]any
	if err := yaml.Unmarshal(raw, &vars); err != nil {
		t.Fatalf("vars/example.yml: %v", err)
	}
	sensitive := regexp.MustCompile(`(?i)(password|secret|dsn|_url$|access_key|token)`)
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, vv := range x {
				walk(k, vv)
			}
		case string:
			if !sensitive.MatchString(key) || x == "" {
				return
			}
			if strings.Contains(x, "postgres://") && !strings.Contains(x, "vault_") {
				t.Errorf("%s = %q: take the password from a vault_* variable", key, x)
			}
			if !strings.Contains(x, "vault_") && !strings.Contains(x, "CHANGE-ME") && !strings.HasPrefix(x, "nats://") {
				t.Errorf("%s = %q looks like a literal credential: use a vault_* variable or CHANGE-ME", key, x)
			}
		}
	}
	for k, v := range vars {
		walk(k, v)
	}
}
