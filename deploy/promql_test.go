package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var (
	quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	// A metric selector: a name followed by a label matcher or a range,
	// or any name with the meridian_ prefix.
	selector = regexp.MustCompile(`\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]`)
	meridian = regexp.MustCompile(`\bmeridian_[a-z0-9_]+\b`)
)

// promqlKeywords are words a selector regexp may catch that are not metrics.
var promqlKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true, "offset": true}

// metricNames returns the metric names expr selects, with histogram
// series suffixes (_bucket, _sum, _count) mapped to their family when
// the family is known.
func metricNames(expr string, families map[string]bool) []string {
	expr = quoted.ReplaceAllString(expr, `""`)
	seen := map[string]bool{}
	for _, m := range selector.FindAllStringSubmatch(expr, -1) {
		if !promqlKeywords[m[1]] {
			seen[m[1]] = true
		}
	}
	for _, m := range meridian.FindAllString(expr, -1) {
		seen[m] = true
	}
	var out []string
	for n := range seen {
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suf); ok && families[base] {
				n = base
			}
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// checkNames reports every name of expr that is neither on the live
// node's /metrics, nor a feature metric, nor in also.
func checkNames(t *testing.T, where, expr string, l *liveNode, also ...string) []string {
	t.Helper()
	names := metricNames(expr, l.names)
	if len(names) == 0 {
		t.Errorf("%s: expression names no metric: %s", where, expr)
	}
	for _, n := range names {
		if !l.names[n] && FeatureMetrics[n] == "" && !slices.Contains(also, n) {
			t.Errorf("%s: metric %s is neither exported by a node nor in FeatureMetrics (a typo?): %s", where, n, expr)
		}
	}
	return names
}

func TestMetricNames(t *testing.T) {
	fam := map[string]bool{"meridian_proxy_request_duration_seconds": true}
	tests := []struct {
		expr string
		want []string
	}{
		{`sum by (region) (rate(meridian_proxy_requests_total{code=~"5.."}[5m]))`, []string{"meridian_proxy_requests_total"}},
		{`histogram_quantile(0.95, sum by (le) (rate(meridian_proxy_request_duration_seconds_bucket[5m])))`, []string{"meridian_proxy_request_duration_seconds"}},
		{`max by (region) (meridian_region_up) == 0 and on (region) up{job="meridian_x"}`, []string{"meridian_region_up", "up"}},
		{`meridian_tls_certificate_expiry_timestamp_seconds - time() < 14 * 86400`, []string{"meridian_tls_certificate_expiry_timestamp_seconds"}},
		{`rate(meridain_dns_answers_total[1m])`, []string{"meridain_dns_answers_total"}},
	}
	for _, tc := range tests {
		if got := metricNames(tc.expr, fam); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%s) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

// checkSyntax has promtool parse every expression, as recording rules.
func checkSyntax(t *testing.T, exprs map[string]string) {
	t.Helper()
	promtool := tool(t, "promtool")
	var b strings.Builder
	b.WriteString("groups:\n  - name: syntax\n    rules:\n")
	keys := make([]string, 0, len(exprs))
	for k := range exprs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		fmt.Fprintf(&b, "      - record: syntax:check:%d\n        expr: %q\n", i, exprs[k])
	}
	path := filepath.Join(t.TempDir(), "exprs.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules of the expressions: %v\n%s\nexpressions (in order): %q", err, out, keys)
	}
}
