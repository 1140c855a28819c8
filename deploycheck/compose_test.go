package deploycheck

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// composeFile is the part of docker-compose.yml the checks read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       *composeBuild     `yaml:"build"`
	Command     any               `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Volumes []string `yaml:"volumes"`
	Deploy  struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
	Ports []string `yaml:"ports"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
	Target     string `yaml:"target"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// TestCompose checks docker-compose.yml's structure the way `docker compose
// config` would (no Docker engine here): every service has an image or a
// build whose Dockerfile target exists, depends_on and named volumes resolve,
// and the pieces the stack needs are there and configured as documented.
func TestCompose(t *testing.T) {
	c := readCompose(t)
	targets := dockerfileStages(t)
	for name, s := range c.Services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("service %s has neither image nor build", name)
		}
		if s.Build != nil {
			if s.Build.Dockerfile != "deploy/docker/Dockerfile" || s.Build.Context != "." {
				t.Errorf("service %s: build must be context . with deploy/docker/Dockerfile, got %+v", name, *s.Build)
			}
			if !targets[s.Build.Target] {
				t.Errorf("service %s: Dockerfile has no target %q", name, s.Build.Target)
			}
		}
		for dep, cond := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on %s, which is not a service", name, dep)
			}
			switch cond.Condition {
			case "", "service_started", "service_healthy", "service_completed_successfully":
			default:
				t.Errorf("service %s: depends_on %s: unknown condition %q", name, dep, cond.Condition)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				if _, ok := c.Volumes[src]; !ok {
					t.Errorf("service %s mounts volume %s, which is not declared under volumes", name, src)
				}
			}
		}
	}
	for _, need := range []string{"source", "warehouse", "nats", "nats-box", "minio", "minio-init", "capture", "loader"} {
		if _, ok := c.Services[need]; !ok {
			t.Errorf("no service %s", need)
		}
	}
	if cmd := flatten(c.Services["source"].Command); !strings.Contains(cmd, "wal_level=logical") {
		t.Errorf("source command %q does not set wal_level=logical", cmd)
	}
	if cmd := flatten(c.Services["nats"].Command); !strings.Contains(cmd, "-js") || !strings.Contains(cmd, "-sd /data") {
		t.Errorf("nats command %q: want JetStream (-js) storing on the volume (-sd /data)", cmd)
	}
	if r := c.Services["loader"].Deploy.Replicas; r != 2 {
		t.Errorf("loader deploy.replicas = %d, want 2", r)
	}
	if len(c.Services["loader"].Ports) > 0 {
		t.Error("loader publishes host ports, which breaks `docker compose up --scale loader=3`")
	}
	if cond := c.Services["loader"].DependsOn["minio-init"].Condition; cond != "service_completed_successfully" {
		t.Errorf("loader must wait for the bucket (minio-init: service_completed_successfully), got %q", cond)
	}
	if c.Services["capture"].Build == nil || c.Services["capture"].Build.Target != "capture" ||
		c.Services["loader"].Build == nil || c.Services["loader"].Build.Target != "loader" {
		t.Error("capture and loader must build their own Dockerfile targets")
	}
	raw, _ := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if !bytes.Contains(raw, []byte("--scale loader=3")) || !bytes.Contains(raw, []byte("nats stream report")) {
		t.Error("docker-compose.yml must document `--scale loader=3` and `nats stream report`")
	}
}

// TestComposeEnvMatchesConfig: every REDMS_* variable set on a service built
// from a redms binary is one that binary's Config reads (a typo would be
// silently ignored).
func TestComposeEnvMatchesConfig(t *testing.T) {
	c := readCompose(t)
	bins := loadBinaries(t)
	for svc, bin := range map[string]string{"capture": "redms-capture", "loader": "redms-loader", "rsemu": "redms-rsemu"} {
		b, err := MustFind(bins, bin)
		if err != nil {
			t.Error(err)
			continue
		}
		env := c.Services[svc].Environment
		if len(env) == 0 {
			t.Errorf("service %s sets no environment", svc)
		}
		for k := range env {
			if !strings.HasPrefix(k, "REDMS_") {
				continue
			}
			if _, ok := b.Var(k); !ok {
				t.Errorf("service %s sets %s, which %s's Config (%s) does not read", svc, k, bin, b.Struct)
			}
		}
	}
}

func flatten(cmd any) string {
	switch c := cmd.(type) {
	case string:
		return c
	case []any:
		var parts []string
		for _, p := range c {
			if s, ok := p.(string); ok {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, " ")
	}
	return ""
}

var fromLine = regexp.MustCompile(`(?i)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?\s*$`)

// dockerfileStages returns the stage names of deploy/docker/Dockerfile.
func dockerfileStages(t *testing.T) map[string]bool {
	t.Helper()
	stages, _ := parseDockerfile(t)
	return stages
}

func parseDockerfile(t *testing.T) (stages map[string]bool, lines []string) {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "deploy/docker/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stages = map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		lines = append(lines, line)
		if m := fromLine.FindStringSubmatch(line); m != nil && m[2] != "" {
			if stages[m[2]] {
				t.Errorf("Dockerfile: stage %s declared twice", m[2])
			}
			stages[m[2]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages, lines
}

// TestDockerfile: the four targets exist, every COPY --from and FROM names an
// earlier stage or an image, builds are static and module-by-module, and the
// service images do not run as root.
func TestDockerfile(t *testing.T) {
	stages, lines := parseDockerfile(t)
	for _, target := range []string{"capture", "loader", "rsemu", "devstack"} {
		if !stages[target] {
			t.Errorf("Dockerfile has no target %s", target)
		}
	}
	seen := map[string]bool{}
	current := ""
	users := map[string]string{}
	var text strings.Builder
	for _, line := range lines {
		text.WriteString(line + "\n")
		if m := fromLine.FindStringSubmatch(line); m != nil {
			current = m[2]
			base := m[1]
			if stages[base] && !seen[base] {
				t.Errorf("stage %s builds on %s before it is declared", current, base)
			}
			seen[current] = true
			continue
		}
		if strings.HasPrefix(line, "COPY --from=") {
			from := strings.Fields(strings.TrimPrefix(line, "COPY --from="))[0]
			if !seen[from] {
				t.Errorf("stage %s copies from %s, not an earlier stage", current, from)
			}
		}
		if i := strings.Index(line, "cd services/"); i >= 0 {
			svc := strings.Fields(line[i+3:])[0]
			if _, err := os.Stat(filepath.Join(repoRoot, svc, "main.go")); err != nil {
				t.Errorf("stage %s builds %s, which has no main.go", current, svc)
			}
		}
		if strings.HasPrefix(line, "USER ") {
			users[current] = strings.TrimPrefix(line, "USER ")
		}
	}
	all := text.String()
	for _, need := range []string{"CGO_ENABLED=0", "GOWORK=off"} {
		if !strings.Contains(all, need) {
			t.Errorf("Dockerfile does not set %s", need)
		}
	}
	for _, svc := range []string{"capture", "loader", "rsemu"} {
		if u := users[svc]; u == "" || strings.HasPrefix(u, "root") || strings.HasPrefix(u, "0") {
			t.Errorf("target %s runs as %q; want a non-root USER", svc, u)
		}
	}
}
