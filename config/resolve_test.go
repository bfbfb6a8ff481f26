package config

import "testing"

func TestTokenErrors(t *testing.T) {
	runErrCases(t, []errCase{{
		name: "secrets",
		env:  map[string]string{"T_B": "b", "T_EMPTY": "", "T_DUP": "same"},
		files: map[string]string{
			"empty.token": " \n\t\n",
			"dup.token":   "same\n",
		},
		yaml: `admin:
  tokens:
    - {name: a, role: read}
    - {name: b, role: read, secret_env: T_B, secret_file: b.token}
    - {name: c, role: read, secret_env: MERIDIAN_TEST_SURELY_UNSET}
    - {name: d, role: read, secret_file: missing.token}
    - {name: e, role: read, secret_env: T_EMPTY}
    - {name: f, role: write, secret_env: T_DUP}
    - {name: g, role: read, secret_file: empty.token}
    - {name: h, role: read, secret_file: dup.token}
    - {role: read, secret_env: T_B}
` + regionR1 + zonesAndService,
		want: []string{
			`3: token "a": set exactly one of secret_env and secret_file`,
			`4: token "b": set exactly one of secret_env and secret_file`,
			`5: token "c": environment variable MERIDIAN_TEST_SURELY_UNSET is not set`,
			`6: token "d": reading secret file: stat missing.token: no such file or directory`,
			`7: token "e": environment variable T_EMPTY is empty`,
			`9: token "g": secret file empty.token is empty`,
			`10: token "h": same secret as token "f"`,
			`11: admin.tokens[8]: name is required`,
		},
	}})
}

func TestZoneErrors(t *testing.T) {
	runErrCases(t, []errCase{{
		name: "zone settings",
		yaml: regionR1 + `zones:
  - name: example.com
    nameservers: []
  - name: example.org
    nameservers: [ns1.example.com, "ns 2"]
    soa: {email: hostmaster, ttl: 0, negative_ttl: -1, expire: 4294967296}
services:
  - name: api
    hostnames: [api.example.com]
    regions: [r1]
`,
		want: []string{
			`6: zone "example.com": no nameservers`,
			`8: zone "example.org": nameserver "ns 2" is not a valid host name`,
			`9: zone "example.org": soa.email "hostmaster" is not an email address`,
			`9: zone "example.org": soa.ttl 0 is outside 1..2147483647`,
			`9: zone "example.org": soa.negative_ttl -1 is outside 0..2147483647`,
			`9: zone "example.org": soa.expire 4294967296 is outside 1..2147483647`,
		},
	}, {
		name: "static records",
		files: map[string]string{
			"zones/example.com.zone": "$TTL 300\nmail A 192.0.2.25\n@ 86400 NS ns1.old-provider.net.\nsub NS ns1.sub.example.com.\nbad  A 192.0.2.999\n",
			"zones/other.zone":       "www.example.org. A 192.0.2.1\n",
		},
		yaml: regionR1 + `zones:
  - name: example.com
    nameservers: [ns1.example.com]
    file: zones/example.com.zone
    records:
      - "www 300 CNAMEX api"
      - "other.example.net. A 192.0.2.1"
      - "@ SOA ns1 hostmaster 1 2 3 4 5"
      - "api A 192.0.2.7"
      - "; only a comment"
      - "api TXT \"fine\""
      - "$INCLUDE /etc/passwd"
  - name: example.org
    nameservers: [ns1.example.com]
    file: missing.zone
  - name: example.net
    nameservers: [ns1.example.com]
    file: zones/other.zone
services:
  - name: api
    hostnames: [api.example.com]
    regions: [r1]
`,
		want: []string{
			`7: zone "example.com": zone file zones/example.com.zone: the zone's apex NS records come from its nameservers setting; remove this record (list meridian's servers under nameservers)`,
			`9: zone "example.com": record "www 300 CNAMEX api": expecting RR type or class, not this...: "CNAMEX"`,
			`10: zone "example.com": record "other.example.net. A 192.0.2.1": other.example.net is outside the zone`,
			`11: zone "example.com": record "@ SOA ns1 hostmaster 1 2 3 4 5": SOA records come from the zone's soa settings`,
			`12: zone "example.com": record "api A 192.0.2.7": api.example.com A conflicts with service "api", which answers that name`,
			`13: zone "example.com": record "; only a comment" holds no record`,
			`15: zone "example.com": record "$INCLUDE /etc/passwd": $INCLUDE directive not allowed: "/etc/passwd"`,
			`18: zone "example.org": reading zone file: stat missing.zone: no such file or directory`,
			`21: zone "example.net": zone file zones/other.zone: www.example.org is outside the zone`,
			`zones/example.com.zone:5: zone "example.com": bad A A: "192.0.2.999"`,
		},
	}})
}
