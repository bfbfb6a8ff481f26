package config

import (
	"testing"
)

func TestAddressErrors(t *testing.T) {
	runErrCases(t, []errCase{{
		name: "bad address",
		yaml: `node:
  addresses: [192.0.2.300, "::", 192.0.2.53, 192.0.2.53]
listen:
  dns: ["127.0.0.1"]
  http: ["localhost:http"]
  admin: "[::1:9053"
regions:
  - name: r1
    endpoints: [{address: 192.0.2.1.5}, {address: 224.0.0.1}]
zones:
  - name: example.com
    nameservers: [ns1.example.com]
services:
  - name: api
    hostnames: [api.example.com]
    regions: [r1]
    proxy: {trusted_proxies: [10.0.0.0/8, 10.0.0.0/33, not-a-prefix]}
`,
		want: []string{
			`2: node.addresses[0]: invalid IP address "192.0.2.300"`,
			`2: node.addresses: :: is the unspecified address`,
			`2: node.addresses: duplicate address 192.0.2.53 (first at line 2)`,
			`4: listen.dns[0]: invalid address "127.0.0.1": missing port in address`,
			`5: listen.http[0]: invalid address "localhost:http": invalid port "http"`,
			`6: listen.admin: invalid address "[::1:9053": missing ']' in address`,
			`9: regions[0].endpoints[0].address: invalid IP address "192.0.2.1.5"`,
			`9: region "r1": endpoint address: 224.0.0.1 is a multicast address`,
			`17: services[0].proxy.trusted_proxies[1]: invalid IP prefix "10.0.0.0/33"`,
			`17: services[0].proxy.trusted_proxies[2]: invalid IP prefix "not-a-prefix"`,
		},
	}, {
		name: "listener clash",
		yaml: `listen:
  dns: ["127.0.0.1:5353", "127.0.0.1:0", "127.0.0.1:0"]
  http: ["127.0.0.1:8443"]
  https: ["127.0.0.1:8443"]
  admin: "127.0.0.1:5353"
` + regionR1 + zonesAndService,
		want: []string{
			`4: listen.https[0]: address 127.0.0.1:8443 is already used by listen.http[0]`,
			`4: listen.https needs tls.certificates or tls.acme`,
			`5: listen.admin: address 127.0.0.1:5353 is already used by listen.dns[0]`,
		},
	}, {
		name: "connection limits",
		yaml: `listen:
  connections:
    max: 0
    max_per_source: -1
    idle_timeout: 0s
    busy_idle_timeout: -1s
    busy_at: 120%
` + regionR1 + zonesAndService,
		want: []string{
			`3: listen.connections.max must be at least 1, got 0`,
			`4: listen.connections.max_per_source must not be negative (0 turns it off), got -1`,
			`5: listen.connections.idle_timeout must be positive, got 0s`,
			`6: listen.connections.busy_idle_timeout must be positive, got -1s`,
			`7: listen.connections.busy_at must be within 1%..100%, got 120%`,
		},
	}, {
		name: "connection limits that contradict",
		yaml: `listen:
  connections: {max: 100, max_per_source: 200, idle_timeout: 10s, busy_idle_timeout: 30s}
` + regionR1 + zonesAndService,
		want: []string{
			`2: listen.connections.max_per_source 200 is above listen.connections.max 100 (0 turns it off)`,
			`2: listen.connections.busy_idle_timeout 30s is longer than listen.connections.idle_timeout 10s`,
		},
	}, {
		name: "unknown connection key",
		yaml: `listen:
  connections:
    max_conns: 10
` + regionR1 + zonesAndService,
		want: []string{
			`3: unknown key "max_conns" in listen.connections`,
		},
	}})
}

func TestNameErrors(t *testing.T) {
	runErrCases(t, []errCase{{
		name: "duplicate names",
		env:  map[string]string{"T_OPS": "a", "T_OPS2": "b"},
		yaml: `admin:
  tokens:
    - {name: ops, role: write, secret_env: T_OPS}
    - {name: ops, role: read, secret_env: T_OPS2}
regions:
  - name: r1
    endpoints: [{address: 192.0.2.1}]
  - name: r1
    endpoints: [{address: 192.0.2.2}]
zones:
  - name: example.com
    nameservers: [ns1.example.com]
  - name: EXAMPLE.com.
    nameservers: [ns1.example.com]
services:
  - name: api
    hostnames: [api.example.com]
    regions: [r1]
  - name: api
    hostnames: [api2.example.com]
    regions: [r1]
`,
		want: []string{
			`4: duplicate token name "ops" (first at line 3)`,
			`8: duplicate region "r1" (first at line 6)`,
			`13: duplicate zone "example.com" (first at line 11)`,
			`19: duplicate service "api" (first at line 16)`,
		},
	}, {
		name: "invalid and missing names",
		yaml: `regions:
  - name: "us east"
    endpoints: [{address: 192.0.2.1}]
  - endpoints: [{address: 192.0.2.2}]
zones:
  - name: "bad zone"
    nameservers: [ns1.example.com]
services:
  - name: api/v1
    hostnames: [api.example.com]
    regions: ["us east"]
`,
		want: []string{
			`2: region "us east": invalid name: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit`,
			`4: regions[1]: name is required`,
			`6: zone "bad zone": invalid zone name`,
			`9: service "api/v1": invalid name: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit`,
			`10: service "api/v1": hostname "api.example.com" is not inside any configured zone`,
			`11: service "api/v1": undefined region "us east"`,
		},
	}, {
		name: "duplicate hostnames",
		yaml: regionR1 + `zones:
  - name: example.com
    nameservers: [ns1.example.com]
services:
  - name: api
    hostnames: [api.example.com, www.example.com, API.example.com.]
    regions: [r1]
  - name: web
    hostnames:
      - www.example.com
    regions: [r1]
`,
		want: []string{
			`9: service "api": hostname "api.example.com" is listed twice (first at line 9)`,
			`13: service "web": hostname "www.example.com" is already used by service "api" (first at line 9)`,
		},
	}, {
		name: "hostnames outside zones",
		yaml: `regions:
  - name: r1
    endpoints: [{hostname: lb.example.net}]
zones:
  - name: example.com
    nameservers: [ns1.example.com]
services:
  - name: api
    hostnames: [api.example.net, "bad host.example.com", notexample.com, example.com]
    regions: [r1]
  - name: none
    regions: [r1]
`,
		want: []string{
			`9: service "api": hostname "api.example.net" is not inside any configured zone`,
			`9: service "api": hostname "bad host.example.com" is not a valid host name`,
			`9: service "api": hostname "notexample.com" is not inside any configured zone`,
			`9: service "api": hostname "example.com" is the apex of zone "example.com", where the CNAME answers of endpoints with only a hostname are not allowed`,
			`11: service "none": no hostnames`,
		},
	}})
}

func TestReferenceErrors(t *testing.T) {
	runErrCases(t, []errCase{{
		name: "undefined regions",
		yaml: regionR1 + `  - name: r2
    endpoints: [{address: 192.0.2.2}]
zones:
  - name: example.com
    nameservers: [ns1.example.com]
services:
  - name: api
    hostnames: [api.example.com]
    policy: geo
    regions: [r1, r9, r1]
    geo:
      - {match: [DE], regions: [r2, r8]}
      - match: [default]
        regions: []
    dials: {r1: 50, r2: 10, r7: 0}
  - name: web
    hostnames: [web.example.com]
`,
		want: []string{
			`13: service "api": undefined region "r9"`,
			`13: service "api": region "r1" is listed twice (first at line 13)`,
			`15: service "api": geo rule region "r2" is not in the service's regions`,
			`15: service "api": undefined region "r8"`,
			`16: service "api": geo rule has no regions`,
			`18: service "api": dials: region "r2" is not in the service's regions`,
			`18: service "api": undefined region "r7"`,
			`19: service "web": no regions`,
		},
	}, {
		name: "dials and answers",
		yaml: regionR1 + `  - name: r2
    endpoints: [{address: 192.0.2.2}]
zones:
  - name: example.com
    nameservers: [ns1.example.com]
services:
  - name: api
    hostnames: [api.example.com]
    regions: [r1, r2]
    dials: {r1: 101, r2: -1}
    answers: 0
`,
		want: []string{
			`13: service "api": dial for "r1" must be within 0..100, got 101`,
			`13: service "api": dial for "r2" must be within 0..100, got -1`,
			`14: service "api": answers must be at least 1, got 0`,
		},
	}})
}

func TestValueErrors(t *testing.T) {
	runErrCases(t, []errCase{{
		name: "values outside their sets",
		env:  map[string]string{"T_OPS": "x"},
		yaml: `admin:
  tokens: [{name: ops, role: admin, secret_env: T_OPS}]
state: {backend: consul}
tls:
  acme: {challenge: tls-alpn-01}
regions:
  - name: r1
    endpoints: [{address: 192.0.2.1}]
    health: {type: icmp}
zones:
  - name: example.com
    nameservers: [ns1.example.com]
services:
  - name: api
    hostnames: [api.example.com]
    regions: [r1]
    mode: anycast
    policy: random
    all_down: servfail
    proxy: {sticky: session}
`,
		want: []string{
			`2: token "ops": role "admin" is not one of read, write`,
			`3: state.backend "consul" is not one of file, etcd`,
			`5: tls.acme.challenge "tls-alpn-01" is not one of dns-01, http-01`,
			`9: region "r1": health.type "icmp" is not one of http, https, tcp, none`,
			`17: service "api": mode "anycast" is not one of dns, proxy`,
			`18: service "api": policy "random" is not one of latency, geo, failover, weighted`,
			`19: service "api": all_down "servfail" is not one of answer, nodata`,
			`20: service "api": proxy.sticky "session" is not one of none, client-ip, cookie`,
		},
	}, {
		name: "regions and endpoints",
		yaml: `regions:
  - name: r1
    endpoints:
      - {weight: 2}
      - {address: 192.0.2.1, url: "ftp://192.0.2.1"}
      - {hostname: lb.example.net, url: "http://[::1"}
      - {address: 192.0.2.2, url: "/relative", weight: 0}
      - {hostname: "-bad-.example.net"}
      - {address: 192.0.2.3, url: "http://-bad-.example.net"}
    min_healthy: 9
  - name: r2
    endpoints: []
    min_healthy: 0
  - name: r3
    location: {lat: -90.5, lon: 180.1}
    endpoints: [{address: 192.0.2.3}]
node:
  location: {lat: 91, lon: -8}
` + zonesAndService,
		want: []string{
			`4: region "r1": endpoint needs an address or a hostname`,
			`5: region "r1": endpoint url "ftp://192.0.2.1": the scheme must be http or https`,
			`6: region "r1": endpoint url "http://[::1": missing ']' in host`,
			`7: region "r1": endpoint url "/relative": the scheme must be http or https`,
			`7: region "r1": endpoint weight must be at least 1, got 0`,
			`8: region "r1": endpoint hostname "-bad-.example.net" is not a valid host name`,
			`9: region "r1": duplicate endpoint url http://-bad-.example.net (first at line 8)`,
			`10: region "r1": min_healthy 9 is more than the region's 6 endpoints`,
			`12: region "r2": no endpoints`,
			`13: region "r2": min_healthy must be at least 1, got 0`,
			`15: region "r3": location.lat -90.5 is outside -90..90`,
			`15: region "r3": location.lon 180.1 is outside -180..180`,
			`18: node: location.lat 91 is outside -90..90`,
		},
	}, {
		name: "geo codes",
		yaml: regionR1 + `  - name: r2
    endpoints: [{address: 192.0.2.2}]
zones:
  - name: example.com
    nameservers: [ns1.example.com]
services:
  - name: api
    hostnames: [api.example.com]
    policy: geo
    regions: [r1, r2]
    geo:
      - {match: [de, EU, US-CA, GB-ENG, default], regions: [r1]}
      - {match: [XX, Europe, US-, QQ-CA, "123", DE], regions: [r2]}
      - {match: [Default, na, na], regions: [r2]}
      - {match: [], regions: [r1]}
`,
		want: []string{
			`16: service "api": geo match "XX" is not default, a continent (AF AN AS EU NA OC SA), a country (DE) or a subdivision (US-CA)`,
			`16: service "api": geo match "EUROPE" is not default, a continent (AF AN AS EU NA OC SA), a country (DE) or a subdivision (US-CA)`,
			`16: service "api": geo match "US-" is not default, a continent (AF AN AS EU NA OC SA), a country (DE) or a subdivision (US-CA)`,
			`16: service "api": geo match "QQ-CA" is not default, a continent (AF AN AS EU NA OC SA), a country (DE) or a subdivision (US-CA)`,
			`16: service "api": geo match "123" is not default, a continent (AF AN AS EU NA OC SA), a country (DE) or a subdivision (US-CA)`,
			`16: service "api": geo match "DE" is already used by another rule (first at line 15)`,
			`17: service "api": more than one geo rule matches default (first at line 15)`,
			`17: service "api": geo match "NA" is repeated in its rule`,
			`18: service "api": geo rule has no match codes`,
		},
	}, {
		name: "durations and counts",
		yaml: `node: {shutdown_timeout: 0s, drain: -1s}
regions:
  - name: r1
    endpoints: [{address: 192.0.2.1}]
    health:
      interval: 0s
      timeout: -1s
      rise: 0
      fall: -2
      expect: [99, 200, 600]
      path: health
      headers: {"Bad Name": x, X-Ok: "a\nb"}
  - name: r2
    endpoints: [{address: 192.0.2.2}]
    health: {interval: 1s, timeout: 3s}
zones:
  - name: example.com
    nameservers: [ns1.example.com]
services:
  - name: api
    hostnames: [api.example.com]
    regions: [r1, r2]
    ttl: 0s
    ttl_degraded: 500ms
    proxy: {connect_timeout: 0s, timeout: -5s, retries: -1, max_retry_body: 0}
`,
		want: []string{
			`1: node.drain must not be negative, got -1s`,
			`1: node.shutdown_timeout must be positive, got 0s`,
			`6: region "r1": health.interval must be positive, got 0s`,
			`7: region "r1": health.timeout must be positive, got -1s`,
			`8: region "r1": health.rise must be at least 1, got 0`,
			`9: region "r1": health.fall must be at least 1, got -2`,
			`10: region "r1": health.expect code 99 is outside 100..599`,
			`10: region "r1": health.expect code 600 is outside 100..599`,
			`11: region "r1": health.path "health" must start with /`,
			`12: region "r1": health.headers: invalid header name "Bad Name"`,
			`12: region "r1": health.headers: the value of X-Ok holds a line break`,
			`23: service "api": ttl must be between 1s and 2147483647s, got 0s`,
			`24: service "api": ttl_degraded must be between 1s and 2147483647s, got 500ms`,
			`25: service "api": proxy.retries must not be negative, got -1`,
			`25: service "api": proxy.connect_timeout must be positive, got 0s`,
			`25: service "api": proxy.timeout must be positive, got -5s`,
		},
	}, {
		name: "retry_on",
		yaml: regionR1 + zonesAndService + `    proxy:
      retry_on: [connect-failure, timeout, 5XX, 429, 42, 1000, teapot, "5xx "]
`,
		want: []string{
			`12: service "api": proxy.retry_on "42" is not connect-failure, timeout, 5xx or an HTTP status code`,
			`12: service "api": proxy.retry_on "1000" is not connect-failure, timeout, 5xx or an HTTP status code`,
			`12: service "api": proxy.retry_on "teapot" is not connect-failure, timeout, 5xx or an HTTP status code`,
			`12: service "api": proxy.retry_on "5xx " is not connect-failure, timeout, 5xx or an HTTP status code`,
		},
	}, {
		name: "proxy mode needs node addresses and listeners",
		yaml: regionR1 + zonesAndService + `    mode: proxy
`,
		want: []string{
			`11: service "api": mode proxy needs node.addresses: its DNS answers are this node's addresses`,
			`11: service "api": mode proxy needs a listen.http or listen.https address`,
		},
	}, {
		name: "tls",
		yaml: `listen:
  https: ["127.0.0.1:8443"]
tls:
  certificates:
    - {cert_file: a.pem}
    - {key_file: b.key}
  acme:
    email: ops-at-example.com
    ca: "acme.example.com/directory"
    challenge: http-01
` + regionR1 + zonesAndService,
		want: []string{
			`5: tls.certificates: key_file is required`,
			`6: tls.certificates: cert_file is required`,
			`8: tls.acme.email "ops-at-example.com" is not an email address`,
			`9: tls.acme.ca "acme.example.com/directory": the scheme must be http or https`,
			`10: tls.acme.challenge http-01 needs a listen.http address`,
		},
	}, {
		name: "https without tls",
		yaml: `listen:
  https: ["127.0.0.1:8443"]
` + regionR1 + zonesAndService,
		want: []string{`2: listen.https needs tls.certificates or tls.acme`},
	}, {
		name: "etcd without endpoints",
		yaml: `state: {backend: etcd}
` + regionR1 + zonesAndService,
		want: []string{`1: state.backend etcd needs state.etcd.endpoints`},
	}, {
		name: "etcd settings",
		yaml: `state:
  backend: etcd
  etcd: {endpoints: ["127.0.0.1:2379", "unix:///run/etcd.sock"], prefix: meridian}
` + regionR1 + zonesAndService,
		want: []string{
			`3: state.etcd.endpoints: "127.0.0.1:2379": first path segment in URL cannot contain colon`,
			`3: state.etcd.endpoints: "unix:///run/etcd.sock": the scheme must be http or https`,
			`3: state.etcd.prefix "meridian" must start with /`,
		},
	}, {
		name: "etcd credentials and tls",
		yaml: `state:
  backend: etcd
  etcd:
    endpoints: ["http://127.0.0.1:2379"]
    username: meridian
    tls: {cert_file: node.pem}
    dial_timeout: 0s
` + regionR1 + zonesAndService,
		want: []string{
			`4: state.etcd.endpoints: "http://127.0.0.1:2379": state.etcd.tls needs https:// endpoints`,
			`5: state.etcd.username needs password_env or password_file`,
			`6: state.etcd.tls: cert_file and key_file go together`,
			`7: state.etcd.dial_timeout must be above 0 and at most 1m0s, got 0s`,
		},
	}, {
		name: "etcd password sources",
		yaml: `state:
  backend: etcd
  etcd:
    endpoints: ["http://127.0.0.1:2379"]
    password_env: MERIDIAN_TEST_UNSET_ETCD_PASSWORD
` + regionR1 + zonesAndService,
		want: []string{
			`3: state.etcd: a password needs state.etcd.username`,
			`5: state.etcd.password_env: environment variable MERIDIAN_TEST_UNSET_ETCD_PASSWORD is not set`,
		},
	}, {
		name: "fleet settings",
		yaml: `fleet:
  node_ttl: 1500ms
  health: majority
  quorum: 1
` + regionR1 + zonesAndService,
		want: []string{
			`2: fleet.node_ttl must be between 2s and 10m0s, got 1.5s`,
			`3: fleet.health "majority" is not one of local, quorum`,
			`4: fleet.quorum must be above 0 and below 1, got 1`,
		},
	}, {
		name: "fleet ttl in whole seconds",
		yaml: `fleet: {node_ttl: 2500ms, quorum: -0.5, colour: red}
` + regionR1 + zonesAndService,
		want: []string{
			`1: unknown key "colour" in fleet`,
			`1: fleet.node_ttl must be whole seconds (an etcd lease), got 2.5s`,
			`1: fleet.quorum must be above 0 and below 1, got -0.5`,
		},
	}})
}

func TestSeveralErrorsTogether(t *testing.T) {
	runErrCases(t, []errCase{{
		name: "one of each section",
		yaml: `node: {addresses: [bogus], colour: red}
listen: {dns: [":53x"]}
regions:
  - name: r1
    endpoints: []
    health: {interval: fast}
zones:
  - name: example.com
    nameservers: []
services:
  - name: api
    hostnames: [api.example.org]
    regions: [r1, r2]
    answers: 0
`,
		want: []string{
			`1: node.addresses[0]: invalid IP address "bogus"`,
			`1: unknown key "colour" in node`,
			`2: listen.dns[0]: invalid address ":53x": invalid port "53x"`,
			`5: region "r1": no endpoints`,
			`6: regions[0].health.interval: invalid duration "fast": use a Go duration such as 2s, 500ms or 1m30s`,
			`9: zone "example.com": no nameservers`,
			`12: service "api": hostname "api.example.org" is not inside any configured zone`,
			`13: service "api": undefined region "r2"`,
			`14: service "api": answers must be at least 1, got 0`,
		},
	}})
}
