package deploycheck

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// serviceMetrics is every metric the services export. devstack only reads
// metrics (its literals would make every name look exported), so it is left out.
func serviceMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names, err := ExportedMetrics(repoRoot, []string{"services", "pkg"}, "services/devstack")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no redms_* metric declared under services/ or pkg/")
	}
	return names
}

func checkNames(t *testing.T, where string, used []string, exported map[string]bool) {
	t.Helper()
	for _, n := range used {
		if !Exported(exported, n) {
			t.Errorf("%s uses %s, which no service exports (services/*/ Go sources; docs/CONTRACTS.md \"Metrics\")", where, n)
		}
	}
}

// TestGrafanaDashboard: redms.json is valid JSON, every panel has a query, and
// every redms_* metric in a query or variable exists in the services' code.
func TestGrafanaDashboard(t *testing.T) {
	exported := serviceMetrics(t)
	raw, err := os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/redms.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("deploy/grafana/redms.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard needs uid, title and panels (uid=%q title=%q panels=%d)", dash.UID, dash.Title, len(dash.Panels))
	}
	ids := map[int]bool{}
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: duplicate id %d", p.Title, p.ID)
		}
		ids[p.ID] = true
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := MetricNames(tg.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q reads no redms_* metric", p.Title, tg.Expr)
			}
			checkNames(t, "panel "+p.Title, names, exported)
			for _, n := range names {
				used[n] = true
			}
		}
	}
	for _, v := range dash.Templating.List {
		checkNames(t, "variable "+v.Name, MetricNames(v.Definition), exported)
	}
	// The panels the dashboard promises.
	for _, need := range []string{
		"redms_loader_lag_seconds", "redms_loader_backlog_messages", "redms_loader_changes_applied_total",
		"redms_loader_apply_duration_seconds_bucket", "redms_capture_slot_lag_bytes", "redms_loader_parked_tables",
	} {
		if !used[need] {
			t.Errorf("no panel reads %s", need)
		}
	}
}

// TestCloudWatchAgentConfig: the agent config has the sections the agent
// needs, points at prometheus.yml, declares the alarm metrics, ships the
// logs; every metric it names exists in the services' code.
func TestCloudWatchAgentConfig(t *testing.T) {
	exported := serviceMetrics(t)
	raw, err := os.ReadFile(filepath.Join(repoRoot, "deploy/cloudwatch/amazon-cloudwatch-agent.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Logs struct {
			MetricsCollected struct {
				Prometheus *struct {
					LogGroupName         string `json:"log_group_name"`
					PrometheusConfigPath string `json:"prometheus_config_path"`
					EMFProcessor         *struct {
						MetricNamespace   string            `json:"metric_namespace"`
						MetricUnit        map[string]string `json:"metric_unit"`
						MetricDeclaration []struct {
							SourceLabels    []string   `json:"source_labels"`
							LabelMatcher    string     `json:"label_matcher"`
							Dimensions      [][]string `json:"dimensions"`
							MetricSelectors []string   `json:"metric_selectors"`
						} `json:"metric_declaration"`
					} `json:"emf_processor"`
				} `json:"prometheus"`
			} `json:"metrics_collected"`
			LogsCollected struct {
				Files *struct {
					CollectList []struct {
						FilePath     string `json:"file_path"`
						LogGroupName string `json:"log_group_name"`
					} `json:"collect_list"`
				} `json:"files"`
			} `json:"logs_collected"`
		} `json:"logs"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("amazon-cloudwatch-agent.json: %v", err)
	}
	prom := cfg.Logs.MetricsCollected.Prometheus
	if prom == nil || prom.EMFProcessor == nil {
		t.Fatal("logs.metrics_collected.prometheus.emf_processor is missing")
	}
	if filepath.Base(prom.PrometheusConfigPath) != "redms-prometheus.yml" || prom.LogGroupName == "" {
		t.Errorf("prometheus_config_path %q must name redms-prometheus.yml (where the ansible role installs deploy/cloudwatch/prometheus.yml) and log_group_name must be set", prom.PrometheusConfigPath)
	}
	emf := prom.EMFProcessor
	if emf.MetricNamespace == "" || len(emf.MetricDeclaration) == 0 {
		t.Fatal("emf_processor needs metric_namespace and metric_declaration")
	}
	declared := map[string]bool{}
	for _, d := range emf.MetricDeclaration {
		if len(d.SourceLabels) == 0 || d.LabelMatcher == "" || len(d.Dimensions) == 0 || len(d.MetricSelectors) == 0 {
			t.Errorf("metric_declaration %+v: needs source_labels, label_matcher, dimensions, metric_selectors", d)
		}
		for _, s := range d.MetricSelectors {
			names := MetricNames(s)
			checkNames(t, "metric_selectors", names, exported)
			for _, n := range names {
				declared[n] = true
			}
		}
	}
	units := make([]string, 0, len(emf.MetricUnit))
	for n := range emf.MetricUnit {
		units = append(units, n)
	}
	sort.Strings(units)
	checkNames(t, "metric_unit", units, exported)
	// What alarms.md alarms on, plus throughput.
	for _, need := range []string{
		"redms_loader_lag_seconds", "redms_loader_backlog_messages", "redms_loader_changes_applied_total",
		"redms_loader_parked_tables", "redms_capture_slot_lag_bytes",
	} {
		if !declared[need] {
			t.Errorf("emf_processor declares no %s", need)
		}
	}
	files := cfg.Logs.LogsCollected.Files
	if files == nil || len(files.CollectList) == 0 {
		t.Fatal("logs.logs_collected.files.collect_list is missing: the JSON logs are not shipped")
	}
	for _, f := range files.CollectList {
		if filepath.Dir(f.FilePath) != "/var/log/redms" || f.LogGroupName == "" {
			t.Errorf("collect_list entry %+v: the units log to /var/log/redms (LogsDirectory=redms)", f)
		}
	}

	alarms, err := os.ReadFile(filepath.Join(repoRoot, "deploy/cloudwatch/alarms.md"))
	if err != nil {
		t.Fatal(err)
	}
	alarmed := MetricNames(string(alarms))
	checkNames(t, "alarms.md", alarmed, exported)
	for _, n := range alarmed {
		if !declared[n] {
			t.Errorf("alarms.md uses %s, which the agent does not publish (add it to emf_processor)", n)
		}
	}
}

// TestContractMetrics: every metric docs/CONTRACTS.md promises the deploy
// artifacts is exported by the services.
func TestContractMetrics(t *testing.T) {
	exported := serviceMetrics(t)
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docs/CONTRACTS.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	i := strings.Index(text, "## Metrics the deploy artifacts read")
	if i < 0 {
		t.Fatal(`docs/CONTRACTS.md has no "## Metrics the deploy artifacts read" section`)
	}
	section := text[i:]
	if j := strings.Index(section[3:], "\n## "); j >= 0 {
		section = section[:j+3]
	}
	names := MetricNames(section)
	if len(names) == 0 {
		t.Fatal("the metrics section names no metric")
	}
	checkNames(t, "docs/CONTRACTS.md", names, exported)
}
