package dnsserver

import (
	"testing"

	"github.com/miekg/dns"
)

// TestStrictEDNS holds the server to RFC 6891's rules for queries, one
// case per rule.
func TestStrictEDNS(t *testing.T) {
	f := newFixture(t, setup{})
	opt := func() *dns.OPT {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(1232)
		return o
	}
	a := &dns.A{Hdr: dns.RR_Header{Name: "x.example.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}}
	cases := []struct {
		rule  string
		edit  func(m *dns.Msg)
		rcode int
		opt   bool // the answer carries an OPT record
		check func(t *testing.T, m *dns.Msg)
	}{
		{"§6.1.1 OPT in the answer section is FORMERR", func(m *dns.Msg) { m.Extra = nil; m.Answer = []dns.RR{opt()} }, dns.RcodeFormatError, false, nil},
		{"§6.1.1 OPT in the authority section is FORMERR", func(m *dns.Msg) { m.Extra = nil; m.Ns = []dns.RR{opt()} }, dns.RcodeFormatError, false, nil},
		{"§6.1.1 OPT in answer and additional sections is FORMERR", func(m *dns.Msg) { m.Answer = []dns.RR{opt()} }, dns.RcodeFormatError, true, nil},
		{"§6.1.1 more than one OPT is FORMERR", func(m *dns.Msg) { m.Extra = append(m.Extra, opt()) }, dns.RcodeFormatError, true, nil},
		{"§6.1.1 OPT may be anywhere in the additional section", func(m *dns.Msg) { m.Extra = []dns.RR{a, m.Extra[0]} }, dns.RcodeSuccess, true, nil},
		{"§6.1.2 OPT owner other than the root is FORMERR", func(m *dns.Msg) { m.Extra[0].Header().Name = "example.test." }, dns.RcodeFormatError, false, nil},
		{"§6.1.3 unimplemented version is BADVERS, answered with version 0", func(m *dns.Msg) { m.IsEdns0().SetVersion(1) }, dns.RcodeBadVers, true, func(t *testing.T, m *dns.Msg) {
			if v := m.IsEdns0().Version(); v != 0 || len(m.Answer) != 0 {
				t.Errorf("version %d with %d answers, want 0 and none", v, len(m.Answer))
			}
		}},
		{"§6.1.3 Z bits are ignored and answered as zero", func(m *dns.Msg) { m.IsEdns0().SetZ(0x7FFF) }, dns.RcodeSuccess, true, func(t *testing.T, m *dns.Msg) {
			if z := m.IsEdns0().Z(); z != 0 || len(m.Answer) != 1 {
				t.Errorf("Z %#x with %d answers, want 0 and the answer", z, len(m.Answer))
			}
		}},
		{"§6.1.3 DO is copied (RFC 3225)", func(m *dns.Msg) { m.IsEdns0().SetDo() }, dns.RcodeSuccess, true, func(t *testing.T, m *dns.Msg) {
			if !m.IsEdns0().Do() {
				t.Errorf("DO not copied")
			}
		}},
		{"§6.2.5 a payload size below 512 counts as 512", func(m *dns.Msg) { m.IsEdns0().SetUDPSize(0) }, dns.RcodeSuccess, true, func(t *testing.T, m *dns.Msg) {
			if len(m.Answer) != 1 || m.IsEdns0().UDPSize() != maxUDPSize {
				t.Errorf("%d answers, advertised size %d; want the answer and %d", len(m.Answer), m.IsEdns0().UDPSize(), maxUDPSize)
			}
		}},
		{"§6.1.2 unknown options are ignored and not echoed", func(m *dns.Msg) {
			m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1, 2, 3}}, &dns.EDNS0_NSID{Code: dns.EDNS0NSID}}
		}, dns.RcodeSuccess, true, func(t *testing.T, m *dns.Msg) {
			if n := len(m.IsEdns0().Option); n != 0 {
				t.Errorf("%d options echoed", n)
			}
		}},
		{"§7 no OPT in the query, none in the answer", func(m *dns.Msg) { m.Extra = nil }, dns.RcodeSuccess, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.rule, func(t *testing.T) {
			q := rawQuery(t, tc.edit)
			m := new(dns.Msg)
			if err := m.Unpack(f.answerBytes(q, "192.0.2.1")); err != nil {
				t.Fatalf("answer does not parse: %v", err)
			}
			if m.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
			if (m.IsEdns0() != nil) != tc.opt {
				t.Errorf("OPT in the answer: %v, want %v", m.IsEdns0() != nil, tc.opt)
			}
			if tc.check != nil && m.IsEdns0() != nil {
				tc.check(t, m)
			}
		})
	}
	// §7: a problem with the OPT record itself is FORMERR, and the answer
	// carries an OPT record.
	for name, q := range map[string][]byte{
		"option header cut short":      withRaw(t, []byte{0, 10}),
		"option data beyond its RDATA": withRaw(t, []byte{0, 10, 0, 9, 1, 2}),
	} {
		t.Run("§7 "+name+" is FORMERR with an OPT", func(t *testing.T) {
			m := new(dns.Msg)
			if err := m.Unpack(f.answerBytes(q, "192.0.2.1")); err != nil {
				t.Fatalf("answer does not parse: %v", err)
			}
			if m.Rcode != dns.RcodeFormatError || m.IsEdns0() == nil {
				t.Errorf("rcode %s OPT %v, want FORMERR with an OPT", dns.RcodeToString[m.Rcode], m.IsEdns0())
			}
		})
	}
}

// withRaw returns a query whose OPT RDATA is rdata, as sent.
func withRaw(t testing.TB, rdata []byte) []byte {
	b := rawQuery(t, nil) // the OPT is last, with an empty RDATA
	b = b[:len(b)-2]
	b = append(b, byte(len(rdata)>>8), byte(len(rdata)))
	return append(b, rdata...)
}
