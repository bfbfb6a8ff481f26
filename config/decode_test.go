package config

import (
	"strings"
	"testing"
)

func TestDecodeErrors(t *testing.T) {
	runErrCases(t, []errCase{
		{
			name: "unknown key",
			yaml: `node:
  name: n1
  adresses: [192.0.2.53]
regions:
  - name: r1
    endpoints: [{address: 192.0.2.1}]
    healthcheck: {}
` + zonesAndService + `colour: blue
`,
			want: []string{
				`3: unknown key "adresses" in node (did you mean "addresses"?)`,
				`7: unknown key "healthcheck" in regions[0]`,
				`15: unknown key "colour"`,
			},
		},
		{
			name: "wrong type",
			yaml: `node:
  name: [n1]
  location: {lat: north, lon: 8}
regions:
  - name: r1
    endpoints: {address: 192.0.2.1}
    health: {rise: two, fall: 1.5}
    min_healthy: "1"
zones: example.com
services:
  - name: api
    hostnames: api.example.com
    regions: [r1]
    geo: [{match: [DE], regions: [r1], fence: maybe}]
`,
			want: []string{
				`2: node.name: expected a string, got a list`,
				`3: node.location.lat: expected a number, got the string "north"`,
				`6: regions[0].endpoints: expected a list, got a mapping`,
				`7: regions[0].health.rise: expected an integer, got the string "two"`,
				`7: regions[0].health.fall: expected an integer, got the number 1.5`,
				`8: regions[0].min_healthy: expected an integer, got the string "1"`,
				`9: zones: expected a list, got the string "example.com"`,
				`12: services[0].hostnames: expected a list, got the string "api.example.com"`,
				`14: services[0].geo[0].fence: expected true or false, got the string "maybe"`,
			},
		},
		{
			name: "bad duration",
			yaml: `node:
  drain: 5 seconds
  shutdown_timeout: 30
regions:
  - name: r1
    endpoints: [{address: 192.0.2.1}]
    health: {interval: 2x, timeout: [1s]}
` + zonesAndService,
			want: []string{
				`2: node.drain: invalid duration "5 seconds": use a Go duration such as 2s, 500ms or 1m30s`,
				`3: node.shutdown_timeout: invalid duration "30": a unit is required, e.g. 2s or 500ms`,
				`7: regions[0].health.interval: invalid duration "2x": use a Go duration such as 2s, 500ms or 1m30s`,
				`7: regions[0].health.timeout: expected a single value, got a list`,
			},
		},
		{
			name: "bad percentage and size",
			yaml: regionR1 + zonesAndService + `    proxy: {retry_budget: lots, max_retry_body: 1.5MiB}
  - name: web
    hostnames: [web.example.com]
    regions: [r1]
    proxy: {retry_budget: 101%, max_retry_body: -1}
`,
			want: []string{
				`11: services[0].proxy.retry_budget: invalid percentage "lots": use a number of percent such as 20%`,
				`11: services[0].proxy.max_retry_body: invalid size "1.5MiB": use a whole number with an optional unit B, KB, MB, GB, KiB, MiB or GiB`,
				`15: services[1].proxy.max_retry_body: invalid size "-1": use a whole number with an optional unit B, KB, MB, GB, KiB, MiB or GiB`,
				`15: service "web": proxy.retry_budget must be within 0%..100%, got 101%`,
			},
		},
		{
			name: "duplicate key",
			yaml: `node: {name: a, name: b}
` + regionR1 + `    min_healthy: 1
    min_healthy: 1
` + zonesAndService,
			want: []string{
				`1: node: duplicate key "name" (first at line 1)`,
				`6: regions[0]: duplicate key "min_healthy" (first at line 5)`,
			},
		},
		{
			name: "yaml syntax",
			yaml: "node:\n  name: a\n   drain: 5s\n",
			want: []string{`3: invalid YAML: mapping values are not allowed in this context`},
		},
		{
			name: "empty",
			yaml: "# nothing here\n",
			want: []string{`1: the config is empty`},
		},
		{
			name: "two documents",
			yaml: "node: {name: a}\n---\nnode: {name: b}\n",
			want: []string{`2: the file holds more than one YAML document`},
		},
		{
			name: "not a mapping",
			yaml: "- node\n",
			want: []string{`1: top level: expected a mapping, got a list`},
		},
		{
			name: "alias errors at the alias",
			yaml: `a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
regions:
  - name: r1
    endpoints: [{address: 192.0.2.1}]
    health: {expect: *c}
`,
			want: []string{
				`1: unknown key "a"`,
				`2: unknown key "b"`,
				`3: unknown key "c"`,
				`7: regions[0].health.expect[0]: expected an integer, got a list`,
				`7: regions[0].health.expect[1]: expected an integer, got a list`,
				`7: regions[0].health.expect[2]: expected an integer, got a list`,
				`7: regions[0].health.expect[3]: expected an integer, got a list`,
				`7: regions[0].health.expect[4]: expected an integer, got a list`,
				`7: regions[0].health.expect[5]: expected an integer, got a list`,
				`7: regions[0].health.expect[6]: expected an integer, got a list`,
				`7: regions[0].health.expect[7]: expected an integer, got a list`,
				`7: regions[0].health.expect[8]: expected an integer, got a list`,
				`7: regions[0].health.expect[9]: expected an integer, got a list`,
			},
		},
		{
			name: "alias bomb",
			yaml: "a: &a [" + strings.Repeat("DE, ", 49) + `DE]
r: &r {match: *a, regions: *a}
g: &g [*r, *r, *r, *r, *r, *r, *r, *r, *r, *r]
s: &s {name: api, geo: *g}
services: [*s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s]
`,
			want: []string{
				`1: unknown key "a"`,
				`2: unknown key "r"`,
				`3: unknown key "g"`,
				`4: unknown key "s"`,
				`5: aliases expand to more than 10000 values`,
			},
		},
		{
			name: "merge key errors at the merge",
			yaml: `regions:
  - name: r1
    endpoints: [{address: 192.0.2.1}]
    health: &h {interval: soon, rise: 3}
  - name: r2
    endpoints: [{address: 192.0.2.2}]
    health: {<<: *h, rise: 4}
` + zonesAndService[:len(zonesAndService)-len("    regions: [r1]\n")] + `    regions: [r1, r2]
`,
			want: []string{
				`4: regions[0].health.interval: invalid duration "soon": use a Go duration such as 2s, 500ms or 1m30s`,
				`7: regions[1].health.interval: invalid duration "soon": use a Go duration such as 2s, 500ms or 1m30s`,
			},
		},
	})
}
