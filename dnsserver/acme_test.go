package dnsserver

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

func TestPresentAndCleanupTXT(t *testing.T) {
	f := newFixture(t, setup{})
	f.listen(t)
	txt := func(name string) (int, []string) {
		r := f.exchange(t, question{name: name, qtype: dns.TypeTXT}.msg(), "udp")
		var vals []string
		for _, rr := range r.Answer {
			if tx, ok := rr.(*dns.TXT); ok {
				vals = append(vals, tx.Txt...)
			}
		}
		slices.Sort(vals)
		return r.Rcode, vals
	}
	const name = "_acme-challenge.www.example.test."
	if rc, _ := txt(name); rc != dns.RcodeNameError {
		t.Fatalf("before: rcode %s, want NXDOMAIN", dns.RcodeToString[rc])
	}
	if err := f.s.PresentTXT(name, "token-1"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.PresentTXT("_ACME-challenge.WWW.example.test", "token-2"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.PresentTXT(name, "token-2"); err != nil { // again: no duplicate
		t.Fatal(err)
	}
	if rc, vals := txt(name); rc != dns.RcodeSuccess || !slices.Equal(vals, []string{"token-1", "token-2"}) {
		t.Errorf("presented: rcode %s values %q, want NOERROR [token-1 token-2]", dns.RcodeToString[rc], vals)
	}
	if rc, vals := txt("_acme-challenge.WWW.Example.Test."); rc != dns.RcodeSuccess || len(vals) != 2 {
		t.Errorf("other case: rcode %s values %q", dns.RcodeToString[rc], vals)
	}
	r := f.exchange(t, question{name: name, qtype: dns.TypeA}.msg(), "udp")
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Errorf("A at the challenge name: %v, want NODATA", r)
	}
	// Other names keep answering while a challenge is up.
	if rc, vals := txt("api.example.test."); rc != dns.RcodeSuccess || !slices.Equal(vals, []string{"steered"}) {
		t.Errorf("static TXT during a challenge: %s %q", dns.RcodeToString[rc], vals)
	}
	// An empty non-terminal appears above a deeper challenge name.
	if err := f.s.PresentTXT("_acme-challenge.deep.new.example.test", "x"); err != nil {
		t.Fatal(err)
	}
	if r := f.exchange(t, question{name: "new.example.test.", qtype: dns.TypeA}.msg(), "udp"); r.Rcode != dns.RcodeSuccess {
		t.Errorf("ancestor of a challenge name: %s, want NOERROR (nodata)", dns.RcodeToString[r.Rcode])
	}
	// A challenge at a name with static TXT records adds to them.
	if err := f.s.PresentTXT("api.example.test", "dyn"); err != nil {
		t.Fatal(err)
	}
	if _, vals := txt("api.example.test."); !slices.Equal(vals, []string{"dyn", "steered"}) {
		t.Errorf("static and presented TXT: %q", vals)
	}

	for _, c := range []struct{ name, value string }{
		{name, "token-1"}, {name, "token-2"}, {"_acme-challenge.deep.new.example.test", "x"}, {"api.example.test", "dyn"},
		{name, "never-presented"},
	} {
		if err := f.s.CleanupTXT(c.name, c.value); err != nil {
			t.Errorf("CleanupTXT(%s, %s): %v", c.name, c.value, err)
		}
	}
	if rc, _ := txt(name); rc != dns.RcodeNameError {
		t.Errorf("after cleanup: rcode %s, want NXDOMAIN", dns.RcodeToString[rc])
	}
	if f.s.dyn.Load() != nil {
		t.Errorf("dynamic records left after cleanup")
	}
}

func TestPresentTXTErrors(t *testing.T) {
	f := newFixture(t, setup{})
	cases := []struct{ name, value, want string }{
		{"_acme-challenge.example.org", "v", `presenting txt record at "_acme-challenge.example.org": not in a configured zone`},
		{"a..b.example.test", "v", `presenting txt record: name "a..b.example.test": dns: bad rdata`},
		{"x.example.test", string(make([]byte, 256)), `presenting txt record at "x.example.test": value longer than 255 octets`},
	}
	for _, c := range cases {
		if err := f.s.PresentTXT(c.name, c.value); err == nil || err.Error() != c.want {
			t.Errorf("PresentTXT(%q): %v, want %q", c.name, err, c.want)
		}
	}
	if err := New(Options{}).PresentTXT("x.example.test", "v"); err == nil || err.Error() != `presenting txt record at "x.example.test": no zones loaded` {
		t.Errorf("before Update: %v", err)
	}
}

func TestPresentTXTConcurrent(t *testing.T) {
	f := newFixture(t, setup{})
	q := packMsg(t, question{name: "_acme-challenge.example.test.", qtype: dns.TypeTXT}.msg())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				v := fmt.Sprint(w, "-", i)
				if err := f.s.PresentTXT("_acme-challenge.example.test", v); err != nil {
					t.Error(err)
				}
				if r := f.answerBytes(q, "192.0.2.1"); r == nil {
					t.Error("no answer")
				}
				if err := f.s.CleanupTXT("_acme-challenge.example.test", v); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if f.s.dyn.Load() != nil {
		t.Errorf("dynamic records left")
	}
}
