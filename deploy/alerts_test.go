package deploy

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRules checks that the alerts cover what pages an operator, that
// every metric they use exists (on a node or in FeatureMetrics; "up" is
// Prometheus's own), and runs promtool check rules and the rules' unit
// tests.
func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("prometheus/alerts.yml: %v", err)
	}
	l := liveMetrics(t)
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a rule without an alert name", g.Name)
				continue
			}
			alerts[r.Alert] = true
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: want a summary and a description", r.Alert)
			}
			checkNames(t, r.Alert, r.Expr, l, "up")
		}
	}
	for _, want := range []string{
		"MeridianRegionDown", "MeridianFailOpen", "MeridianRegionErrorRatioHigh", "MeridianShiftRolledBack",
		"MeridianReplicaLagOverRPO", "MeridianBGPWithdrawn", "MeridianStateBackendDown", "MeridianConfigReloadFailed",
	} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}

	promtool := tool(t, "promtool")
	if out, err := exec.Command(promtool, "check", "rules", "prometheus/alerts.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	cmd := exec.Command(promtool, "test", "rules", "alerts_test.yml")
	cmd.Dir = "prometheus"
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

// TestLiveMetricsPromtool pipes a live node's /metrics, after traffic of
// every kind, through promtool check metrics: no lint finding.
func TestLiveMetricsPromtool(t *testing.T) {
	l := liveMetrics(t)
	promtool := tool(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(l.metrics)
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if !l.names["meridian_tls_certificate_expiry_timestamp_seconds"] || !l.names["meridian_region_override"] {
		t.Errorf("the page checked lacks the certificate or override gauges")
	}
}
