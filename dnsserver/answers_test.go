package dnsserver

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/policy"
)

// answerCase is one question and what the answer must hold.
type answerCase struct {
	name  string
	q     question
	setup setup
	// want
	rcode  int
	aa     bool
	answer []string // records as rrStrings renders them, in order
	ns     []string // authority records; nil = empty
	extra  []string // additional records but OPT; nil = empty
	// tcpExtra replaces extra over TCP, where size is no limit.
	tcpExtra []string
	scope    int // ECS scope expected in the answer; -1: no ECS option
	// dialed is the client of a query for the dialed service, whose
	// answer depends on the client's roll: see dialedAnswer.
	dialed string
}

const (
	soaNeg    = "example.test. 60 IN SOA ns1.example.test. hostmaster.example.test."
	subSOANeg = "sub.example.test. 600 IN SOA ns1.example.test. hostmaster.sub.example.test."
)

var answerCases = []answerCase{
	{name: "static A", q: question{name: "www.example.test.", qtype: dns.TypeA}, aa: true,
		answer: []string{"www.example.test. 300 IN A 192.0.2.80"}, scope: -1},
	{name: "outside the zones is refused", q: question{name: "www.example.org.", qtype: dns.TypeA},
		rcode: dns.RcodeRefused, scope: -1},
	{name: "root is refused", q: question{name: ".", qtype: dns.TypeNS}, rcode: dns.RcodeRefused, scope: -1},
	{name: "nxdomain carries the SOA", q: question{name: "nope.example.test.", qtype: dns.TypeA},
		rcode: dns.RcodeNameError, aa: true, ns: []string{soaNeg}, scope: -1},
	{name: "nodata carries the SOA", q: question{name: "www.example.test.", qtype: dns.TypeAAAA},
		aa: true, ns: []string{soaNeg}, scope: -1},
	{name: "SOA at the apex", q: question{name: "example.test.", qtype: dns.TypeSOA}, aa: true,
		answer: []string{"example.test. 3600 IN SOA ns1.example.test. hostmaster.example.test."}, scope: -1},
	{name: "NS at the apex", q: question{name: "example.test.", qtype: dns.TypeNS}, aa: true,
		answer: []string{"example.test. 3600 IN NS ns1.example.test.", "example.test. 3600 IN NS ns2.example.test."},
		extra:  []string{"ns1.example.test. 3600 IN A 192.0.2.53"}, scope: -1},
	{name: "MX from the zone file", q: question{name: "example.test.", qtype: dns.TypeMX}, aa: true,
		answer: []string{"example.test. 600 IN MX 10 mail.example.test."},
		extra:  []string{"mail.example.test. 600 IN A 192.0.2.25", "mail.example.test. 600 IN AAAA 2001:db8::25"}, scope: -1},
	{name: "SRV from the zone file", q: question{name: "_srv._tcp.example.test.", qtype: dns.TypeSRV}, aa: true,
		answer: []string{"_srv._tcp.example.test. 600 IN SRV 10 5 443 www.example.test."},
		extra:  []string{"www.example.test. 300 IN A 192.0.2.80"}, scope: -1},
	{name: "no glue for a service hostname", q: question{name: "_api._tcp.example.test.", qtype: dns.TypeSRV}, aa: true,
		answer: []string{"_api._tcp.example.test. 600 IN SRV 0 0 443 api.example.test."}, scope: -1},
	{name: "glue that does not fit is left out, not truncated", q: question{name: "many.example.test.", qtype: dns.TypeMX},
		aa: true, answer: manyMX(), tcpExtra: manyGlue(), scope: -1},
	{name: "glue that fits is given", q: question{name: "many.example.test.", qtype: dns.TypeMX, edns: true},
		aa: true, answer: manyMX(), extra: manyGlue(), scope: -1},
	{name: "CNAME chain in the zone", q: question{name: "chain.example.test.", qtype: dns.TypeA}, aa: true,
		answer: []string{
			"chain.example.test. 300 IN CNAME alias.example.test.",
			"alias.example.test. 300 IN CNAME www.example.test.",
			"www.example.test. 300 IN A 192.0.2.80",
		}, scope: -1},
	{name: "CNAME chain ends in nodata", q: question{name: "alias.example.test.", qtype: dns.TypeMX}, aa: true,
		answer: []string{"alias.example.test. 300 IN CNAME www.example.test."}, ns: []string{soaNeg}, scope: -1},
	{name: "CNAME asked for", q: question{name: "alias.example.test.", qtype: dns.TypeCNAME}, aa: true,
		answer: []string{"alias.example.test. 300 IN CNAME www.example.test."}, scope: -1},
	{name: "CNAME out of the zone", q: question{name: "ext.example.test.", qtype: dns.TypeA}, aa: true,
		answer: []string{"ext.example.test. 300 IN CNAME target.example.net."}, scope: -1},
	{name: "CNAME to a missing name", q: question{name: "dangling.example.test.", qtype: dns.TypeA},
		rcode: dns.RcodeNameError, aa: true,
		answer: []string{"dangling.example.test. 300 IN CNAME nothere.example.test."}, ns: []string{soaNeg}, scope: -1},
	{name: "wildcard", q: question{name: "foo.wild.example.test.", qtype: dns.TypeA}, aa: true,
		answer: []string{"foo.wild.example.test. 300 IN A 192.0.2.99"}, scope: -1},
	{name: "wildcard nodata", q: question{name: "a.b.wild.example.test.", qtype: dns.TypeTXT}, aa: true,
		ns: []string{soaNeg}, scope: -1},
	{name: "empty non-terminal is nodata", q: question{name: "ent.example.test.", qtype: dns.TypeA}, aa: true,
		ns: []string{soaNeg}, scope: -1},
	{name: "child zone", q: question{name: "sub.example.test.", qtype: dns.TypeTXT}, aa: true,
		answer: []string{`sub.example.test. 300 IN TXT "child zone"`}, scope: -1},
	{name: "child zone nxdomain", q: question{name: "x.sub.example.test.", qtype: dns.TypeA},
		rcode: dns.RcodeNameError, aa: true, ns: []string{subSOANeg}, scope: -1},
	{name: "case is echoed", q: question{name: "WwW.ExAmPlE.TeSt.", qtype: dns.TypeA}, aa: true,
		answer: []string{"WwW.ExAmPlE.TeSt. 300 IN A 192.0.2.80"}, scope: -1},
	{name: "case is echoed in authority", q: question{name: "NoPe.Example.TEST.", qtype: dns.TypeA},
		rcode: dns.RcodeNameError, aa: true, ns: []string{"Example.TEST. 60 IN SOA ns1.example.test. hostmaster.example.test."}, scope: -1},
	{name: "ANY is minimal", q: question{name: "www.example.test.", qtype: dns.TypeANY}, aa: true,
		answer: []string{`www.example.test. 3600 IN HINFO "RFC8482" ""`}, scope: -1},
	{name: "ECS echoed with scope 0 for static data", q: question{name: "www.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24"},
		aa: true, answer: []string{"www.example.test. 300 IN A 192.0.2.80"}, scope: 0},

	// Steered names.
	{name: "geo default region for the resolver", q: question{name: "api.example.test.", qtype: dns.TypeA}, aa: true,
		answer: []string{"api.example.test. 30 IN A 192.0.2.10", "api.example.test. 30 IN A 192.0.2.11"}, scope: -1},
	{name: "geo EU by ECS, scope of the geo network", q: question{name: "api.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24"},
		aa: true, answer: []string{"api.example.test. 30 IN A 198.51.100.10"}, scope: 16},
	{name: "geo AS by ECS", q: question{name: "api.example.test.", qtype: dns.TypeA, ecs: "175.16.199.0/24"},
		aa: true, answer: []string{"api.example.test. 30 IN A 203.0.113.10"}, scope: 24},
	{name: "geo OC by ECS", q: question{name: "api.example.test.", qtype: dns.TypeA, ecs: "198.18.7.0/24"},
		aa: true, answer: []string{"api.example.test. 30 IN A 203.0.113.10"}, scope: 15},
	{name: "geo default by ECS", q: question{name: "api.example.test.", qtype: dns.TypeA, ecs: "216.160.83.0/24"},
		aa: true, answer: []string{"api.example.test. 30 IN A 192.0.2.10", "api.example.test. 30 IN A 192.0.2.11"}, scope: 24},
	{name: "scope never longer than source", q: question{name: "api.example.test.", qtype: dns.TypeA, ecs: "175.16.0.0/16"},
		aa: true, answer: []string{"api.example.test. 30 IN A 192.0.2.10", "api.example.test. 30 IN A 192.0.2.11"}, scope: 16},
	{name: "ECS source 0 uses the resolver", q: question{name: "api.example.test.", qtype: dns.TypeA, ecs: "0.0.0.0/0"},
		aa: true, answer: []string{"api.example.test. 30 IN A 192.0.2.10", "api.example.test. 30 IN A 192.0.2.11"}, scope: 0},
	{name: "IPv6 ECS", q: question{name: "api.example.test.", qtype: dns.TypeA, ecs: "2001:db8:1:2::/56"},
		aa: true, answer: []string{"api.example.test. 30 IN A 198.51.100.10"}, scope: 48},
	{name: "AAAA from the picked region", q: question{name: "api.example.test.", qtype: dns.TypeAAAA}, aa: true,
		answer: []string{"api.example.test. 30 IN AAAA 2001:db8::10"}, scope: -1},
	{name: "family mismatch is nodata", q: question{name: "api.example.test.", qtype: dns.TypeAAAA, ecs: "81.2.69.0/24"},
		aa: true, ns: []string{soaNeg}, scope: 16},
	{name: "steered name keeps static TXT", q: question{name: "api.example.test.", qtype: dns.TypeTXT}, aa: true,
		answer: []string{`api.example.test. 300 IN TXT "steered"`}, scope: -1},
	{name: "steered name with addresses has no CNAME", q: question{name: "api.example.test.", qtype: dns.TypeCNAME},
		aa: true, ns: []string{soaNeg}, scope: -1},
	{name: "steered name other type is nodata", q: question{name: "api.example.test.", qtype: dns.TypeMX},
		aa: true, ns: []string{soaNeg}, scope: -1},
	{name: "CNAME into a steered name", q: question{name: "apialias.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24"},
		aa: true, answer: []string{"apialias.example.test. 300 IN CNAME api.example.test.", "api.example.test. 30 IN A 198.51.100.10"}, scope: 16},
	{name: "CNAME into a steered name, nodata", q: question{name: "apialias.example.test.", qtype: dns.TypeAAAA, ecs: "175.16.199.0/24"},
		aa: true, answer: []string{"apialias.example.test. 300 IN CNAME api.example.test."}, ns: []string{soaNeg}, scope: 24},
	{name: "hostname endpoint answers a CNAME", q: question{name: "cdn.example.test.", qtype: dns.TypeA}, aa: true,
		answer: []string{"cdn.example.test. 30 IN CNAME edge.cdn.example.net."}, scope: -1},
	{name: "hostname endpoint for AAAA", q: question{name: "cdn.example.test.", qtype: dns.TypeAAAA}, aa: true,
		answer: []string{"cdn.example.test. 30 IN CNAME edge.cdn.example.net."}, scope: -1},
	{name: "hostname endpoint for CNAME", q: question{name: "cdn.example.test.", qtype: dns.TypeCNAME}, aa: true,
		answer: []string{"cdn.example.test. 30 IN CNAME edge.cdn.example.net."}, scope: -1},
	{name: "hostname endpoint down: the next one", q: question{name: "cdn.example.test.", qtype: dns.TypeA},
		setup: setup{down: []string{"cdn/0"}}, aa: true,
		answer: []string{"cdn.example.test. 30 IN CNAME edge2.cdn.example.net."}, scope: -1},
	{name: "proxy mode answers the node", q: question{name: "web.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24"},
		aa: true, answer: []string{"web.example.test. 20 IN A 203.0.113.53"}, scope: 0},
	{name: "proxy mode AAAA", q: question{name: "web.example.test.", qtype: dns.TypeAAAA}, aa: true,
		answer: []string{"web.example.test. 20 IN AAAA 2001:db8::53"}, scope: -1},
	{name: "failover without dials: scope 0", q: question{name: "v6.example.test.", qtype: dns.TypeAAAA, ecs: "81.2.69.0/24"},
		aa: true, answer: []string{"v6.example.test. 30 IN AAAA 2001:db8::10"}, scope: 0},
	{name: "dials: scope at least 24", q: question{name: "dialed.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24"},
		aa: true, dialed: "81.2.69.0", scope: 24},
	{name: "dials: scope at most source", q: question{name: "dialed.example.test.", qtype: dns.TypeA, ecs: "81.2.0.0/16"},
		aa: true, dialed: "81.2.0.0", scope: 16},
	{name: "dials: IPv6 scope 56", q: question{name: "dialed.example.test.", qtype: dns.TypeA, ecs: "2001:db8:1:2::/64"},
		aa: true, dialed: "2001:db8:1:2::", scope: 56},
	{name: "answers from two regions", q: question{name: "two.example.test.", qtype: dns.TypeA}, aa: true,
		answer: []string{"two.example.test. 30 IN A 198.51.100.10", "two.example.test. 30 IN A 203.0.113.10"}, scope: -1},
	{name: "unhealthy endpoint left out", q: question{name: "api.example.test.", qtype: dns.TypeA},
		setup: setup{down: []string{"us-east/0"}}, aa: true,
		answer: []string{"api.example.test. 30 IN A 192.0.2.11"}, scope: -1},
	{name: "region down: the next region", q: question{name: "api.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24"},
		setup: setup{down: []string{"eu-west"}}, aa: true,
		answer: []string{"api.example.test. 30 IN A 192.0.2.10", "api.example.test. 30 IN A 192.0.2.11"}, scope: 16},
	{name: "all down fails open with every endpoint", q: question{name: "api.example.test.", qtype: dns.TypeA},
		setup: setup{down: []string{"us-east", "eu-west", "ap-south"}}, aa: true,
		answer: []string{"api.example.test. 30 IN A 192.0.2.10", "api.example.test. 30 IN A 192.0.2.11"}, scope: -1},
	{name: "all down fails closed", q: question{name: "closed.example.test.", qtype: dns.TypeA},
		setup: setup{down: []string{"eu-west"}}, aa: true, ns: []string{soaNeg}, scope: -1},
	{name: "degraded TTL", q: question{name: "api.example.test.", qtype: dns.TypeA},
		setup: setup{degraded: []string{"api"}}, aa: true,
		answer: []string{"api.example.test. 5 IN A 192.0.2.10", "api.example.test. 5 IN A 192.0.2.11"}, scope: -1},
	{name: "degraded TTL default is a quarter", q: question{name: "v6.example.test.", qtype: dns.TypeAAAA},
		setup: setup{degraded: []string{"v6"}}, aa: true,
		answer: []string{"v6.example.test. 7 IN AAAA 2001:db8::10"}, scope: -1},
	{name: "steered case echo", q: question{name: "API.example.TEST.", qtype: dns.TypeA, ecs: "81.2.69.0/24"},
		aa: true, answer: []string{"API.example.TEST. 30 IN A 198.51.100.10"}, scope: 16},

	// CHAOS.
	{name: "CHAOS id.server", q: question{name: "id.server.", qtype: dns.TypeTXT, class: dns.ClassCHAOS}, aa: true,
		answer: []string{`id.server. 0 CH TXT "edge-test-1"`}, scope: -1},
	{name: "CHAOS hostname.bind", q: question{name: "HOSTNAME.BIND.", qtype: dns.TypeTXT, class: dns.ClassCHAOS}, aa: true,
		answer: []string{`HOSTNAME.BIND. 0 CH TXT "edge-test-1"`}, scope: -1},
	{name: "CHAOS version.bind is refused", q: question{name: "version.bind.", qtype: dns.TypeTXT, class: dns.ClassCHAOS},
		rcode: dns.RcodeRefused, scope: -1},
	{name: "zone transfer is refused", q: question{name: "example.test.", qtype: dns.TypeAXFR},
		rcode: dns.RcodeRefused, scope: -1},
}

// manyMX and manyGlue are the MX records of many.example.test and the
// addresses of their targets: too many to fit in 512 bytes together.
func manyMX() []string {
	var out []string
	for i := 1; i <= 8; i++ {
		out = append(out, fmt.Sprintf("many.example.test. 600 IN MX %d mx%d.example.test.", 10*i, i))
	}
	return out
}

func manyGlue() []string {
	var out []string
	for i := 1; i <= 8; i++ {
		out = append(out, fmt.Sprintf("mx%d.example.test. 600 IN A 192.0.2.%d", i, 30+i),
			fmt.Sprintf("mx%d.example.test. 600 IN AAAA 2001:db8::%d", i, 30+i))
	}
	return out
}

// dialedAnswer is the dialed service's answer for client: us-east keeps
// half the clients by their roll, the rest spill to eu-west. Which half a
// client is in comes from the policy package's own decision.
func dialedAnswer(t *testing.T, f *fixture, client string) []string {
	t.Helper()
	snap := f.s.table.Load().snap
	var d policy.Decision
	policy.Decide(snap, snap.Service("dialed"), &policy.Client{Addr: netip.MustParseAddr(client)}, &d)
	if !d.ByHash {
		t.Fatalf("dialed service decision for %s did not roll", client)
	}
	if snap.Regions[d.Order[0]].Name == "us-east" {
		return []string{"dialed.example.test. 30 IN A 192.0.2.10", "dialed.example.test. 30 IN A 192.0.2.11"}
	}
	return []string{"dialed.example.test. 30 IN A 198.51.100.10"}
}

func checkAnswer(t *testing.T, tc answerCase, r *dns.Msg) {
	t.Helper()
	if r.Rcode != tc.rcode {
		t.Errorf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
	}
	if r.Authoritative != tc.aa {
		t.Errorf("AA = %v, want %v", r.Authoritative, tc.aa)
	}
	if r.RecursionAvailable {
		t.Errorf("RA set")
	}
	if r.Id != 4242 || !r.Response {
		t.Errorf("id %d response %v, want 4242 true", r.Id, r.Response)
	}
	if len(r.Question) != 1 || r.Question[0].Name != tc.q.name {
		t.Errorf("question = %v, want %q echoed", r.Question, tc.q.name)
	}
	if got := soaShort(rrStrings(r.Answer)); !slices.Equal(got, tc.answer) {
		t.Errorf("answer:\n got %q\nwant %q", got, tc.answer)
	}
	if got := soaShort(rrStrings(r.Ns)); !slices.Equal(got, tc.ns) {
		t.Errorf("authority:\n got %q\nwant %q", got, tc.ns)
	}
	var extra []dns.RR
	for _, rr := range r.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	if got := rrStrings(extra); !slices.Equal(got, tc.extra) {
		t.Errorf("additional:\n got %q\nwant %q", got, tc.extra)
	}
	if r.Truncated {
		t.Errorf("TC set")
	}
	ecs := ecsOf(r)
	switch {
	case tc.scope < 0 && ecs != nil:
		t.Errorf("ECS option %v in the answer, want none", ecs)
	case tc.scope >= 0 && ecs == nil:
		t.Errorf("no ECS option in the answer, want scope %d", tc.scope)
	case ecs != nil:
		if int(ecs.SourceScope) != tc.scope {
			t.Errorf("ECS scope = %d, want %d", ecs.SourceScope, tc.scope)
		}
		if ecs.SourceScope > ecs.SourceNetmask {
			t.Errorf("ECS scope %d longer than source %d", ecs.SourceScope, ecs.SourceNetmask)
		}
	}
}

// soaShort drops the serial and timers of SOA records, checked elsewhere.
func soaShort(rrs []string) []string {
	for i, s := range rrs {
		if f := strings.Fields(s); len(f) > 6 && f[3] == "SOA" {
			rrs[i] = strings.Join(f[:6], " ")
		}
	}
	return rrs
}

func TestAnswersUDP(t *testing.T) { runAnswerCases(t, "udp") }
func TestAnswersTCP(t *testing.T) { runAnswerCases(t, "tcp") }

func runAnswerCases(t *testing.T, network string) {
	fixtures := map[string]*fixture{}
	fixtureFor := func(su setup) *fixture {
		key := strings.Join(su.down, ",") + "|" + strings.Join(su.degraded, ",")
		f := fixtures[key]
		if f == nil {
			f = newFixture(t, su)
			f.listen(t)
			fixtures[key] = f
		}
		return f
	}
	for _, tc := range answerCases {
		f := fixtureFor(tc.setup)
		t.Run(tc.name, func(t *testing.T) {
			if tc.dialed != "" {
				tc.answer = dialedAnswer(t, f, tc.dialed)
			}
			if network == "tcp" && tc.tcpExtra != nil {
				tc.extra = tc.tcpExtra
			}
			checkAnswer(t, tc, f.exchange(t, tc.q.msg(), network))
		})
	}
}
