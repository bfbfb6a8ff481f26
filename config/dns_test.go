package config

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestDNSDefaults(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want DNS
	}{
		{"absent", "", DNS{Cookies: true}},
		{"cookies off", "dns: {cookies: false}\n", DNS{}},
		{"rrl defaults", "dns: {rrl: {}}\n", DNS{Cookies: true, RRL: &RRL{
			ResponsesPerSecond: 20, Window: Duration(15 * time.Second), Slip: 2,
			IPv4Prefix: 24, IPv6Prefix: 56, MaxTableSize: 100000,
		}}},
		{"rrl set", `dns:
  rrl:
    responses_per_second: 5
    window: 5s
    slip: 0
    ipv4_prefix: 32
    ipv6_prefix: 64
    exempt: [10.1.2.3/8, "2001:db8::1/32", "::ffff:192.0.2.0/120"]
    max_table_size: 10
`, DNS{Cookies: true, RRL: &RRL{
			ResponsesPerSecond: 5, Window: Duration(5 * time.Second), Slip: 0,
			IPv4Prefix: 32, IPv6Prefix: 64, MaxTableSize: 10,
			Exempt: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("192.0.2.0/24")},
		}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("d.yaml", []byte(minimal+tc.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(c.DNS, tc.want) {
				t.Errorf("got %+v (rrl %+v), want %+v (rrl %+v)", c.DNS, c.DNS.RRL, tc.want, tc.want.RRL)
			}
		})
	}
}

func TestDNSErrors(t *testing.T) {
	runErrCases(t, []errCase{{
		name: "rrl values out of range",
		yaml: `dns:
  rrl:
    responses_per_second: 0
    window: 500ms
    slip: 11
    ipv4_prefix: 33
    ipv6_prefix: 0
    exempt: [10.0.0.0/8, 10.1.0.0/8, 10.0.0.0/33]
    max_table_size: -1
` + regionR1 + zonesAndService,
		want: []string{
			`3: dns.rrl.responses_per_second 0 is outside 1..1000000`,
			`4: dns.rrl.window must be between 1s and 1h0m0s, got 500ms`,
			`5: dns.rrl.slip 11 is outside 0..10`,
			`6: dns.rrl.ipv4_prefix 33 is outside 1..32`,
			`7: dns.rrl.ipv6_prefix 0 is outside 1..128`,
			`8: dns.rrl.exempt[2]: invalid IP prefix "10.0.0.0/33"`,
			`8: dns.rrl.exempt: duplicate prefix 10.0.0.0/8 (first at line 8)`,
			`9: dns.rrl.max_table_size -1 is outside 1..10000000`,
		},
	}, {
		name: "wrong types and unknown keys",
		yaml: `dns:
  cookies: yes please
  rrl:
    responses_per_second: fast
    window: 5
    burst: 3
` + regionR1 + zonesAndService,
		want: []string{
			`2: dns.cookies: expected true or false, got the string "yes please"`,
			`4: dns.rrl.responses_per_second: expected an integer, got the string "fast"`,
			`5: dns.rrl.window: invalid duration "5": a unit is required, e.g. 2s or 500ms`,
			`6: unknown key "burst" in dns.rrl`,
		},
	}})
}
