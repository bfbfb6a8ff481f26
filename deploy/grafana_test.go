package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// grafanaVars stands in for the dashboard's variables when an expression
// is checked outside Grafana.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*", "$service", ".*")

// TestGrafanaDashboard parses the dashboard, checks its layout, that every
// metric it queries exists (on a node or in FeatureMetrics), that it shows
// what operators look for, and that promtool parses every query.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/meridian.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("grafana/meridian.json: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q, uid %q: want both", d.Title, d.UID)
	}
	l := liveMetrics(t)
	ids := map[int]bool{}
	queried := map[string]bool{}
	exprs := map[string]string{}
	for _, p := range d.Panels {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if ids[p.ID] {
			t.Errorf("%s: duplicate id", where)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%s: gridPos %+v outside the 24 columns", where, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no query", where)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s: target %s has no expression", where, tg.RefID)
				continue
			}
			for _, n := range checkNames(t, where, tg.Expr, l) {
				queried[n] = true
			}
			exprs[where+" "+tg.RefID] = grafanaVars.Replace(tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			s, _ := q["query"].(string)
			for _, n := range metricNames(s, l.names) {
				if !l.names[n] {
					t.Errorf("variable %s: metric %s is not exported by a node", v.Name, n)
				}
			}
		}
	}
	// What the dashboard is for: regions' health and RTT, requests,
	// errors and p95 per region, DNS answers, dials, retries, failovers,
	// shifts, the fleet, BGP, replica lag, RTO/RPO, DNS RRL.
	for _, want := range []string{
		"meridian_region_up", "meridian_region_rtt_seconds", "meridian_region_override",
		"meridian_proxy_requests_total", "meridian_proxy_request_duration_seconds",
		"meridian_dns_answers_total", "meridian_dns_request_duration_seconds", "meridian_service_dial",
		"meridian_proxy_retries_total", "meridian_proxy_failovers_total", "meridian_decisions_fail_open_total",
		"meridian_shift_step", "meridian_shift_rollbacks_total",
		"meridian_fleet_nodes", "meridian_region_up_fleet", "meridian_state_backend_up",
		"meridian_bgp_peer_up", "meridian_bgp_announced",
		"meridian_region_replica_lag_seconds", "meridian_failover_rto_seconds", "meridian_failover_rpo_seconds",
		"meridian_dns_rrl_total", "meridian_tls_certificate_expiry_timestamp_seconds",
	} {
		if !queried[want] {
			t.Errorf("the dashboard shows nothing of %s", want)
		}
	}
	checkSyntax(t, exprs)
}
