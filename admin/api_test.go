package admin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/meridian-edge/meridian/admin"
	"github.com/meridian-edge/meridian/node"
	"github.com/meridian-edge/meridian/policy"
)

var _ admin.Backend = (*node.Node)(nil)

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	goleak.VerifyTestMain(m)
}

func TestAuthMatrix(t *testing.T) {
	e := newEnv(t)
	routes := []struct {
		method, path, body string
		change             bool
	}{
		{http.MethodGet, "/v1/status", "", false},
		{http.MethodGet, "/v1/services", "", false},
		{http.MethodGet, "/v1/services/api", "", false},
		{http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r2": 100}, "reason": "auth test"}`, true},
		{http.MethodPost, "/v1/regions/r2/override", `{"health": "auto"}`, true},
		{http.MethodGet, "/v1/explain?service=api&client=192.0.2.77", "", false},
		{http.MethodGet, "/v1/audit", "", false},
		{http.MethodPost, "/v1/reload", "", true},
	}
	tokens := []struct {
		name, secret string
		read, write  int // status for a read and for a change
	}{
		{"none", "", http.StatusUnauthorized, http.StatusUnauthorized},
		{"bad", badSecret, http.StatusUnauthorized, http.StatusUnauthorized},
		{"read", readSecret, http.StatusOK, http.StatusForbidden},
		{"write", writeSecret, http.StatusOK, http.StatusOK},
	}
	for _, rt := range routes {
		for _, tok := range tokens {
			t.Run(rt.method+" "+rt.path+"/"+tok.name, func(t *testing.T) {
				want := tok.read
				if rt.change {
					want = tok.write
				}
				before := e.stateBytes()
				r := e.do(rt.method, rt.path, tok.secret, rt.body)
				if r.status != want {
					t.Fatalf("got %d %s, want %d", r.status, r.body, want)
				}
				if ct := r.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q, want application/json", ct)
				}
				switch want {
				case http.StatusUnauthorized:
					if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
						t.Errorf("WWW-Authenticate = %q, want Bearer ...", got)
					}
					wantMsg := "invalid token"
					if tok.secret == "" {
						wantMsg = "missing bearer token"
					}
					if got := r.errorMessage(t); got != wantMsg {
						t.Errorf("error = %q, want %q", got, wantMsg)
					}
				case http.StatusForbidden:
					if got, wantMsg := r.errorMessage(t), `token "grafana" is read-only`; !strings.Contains(got, wantMsg) {
						t.Errorf("error = %q, want it to contain %q", got, wantMsg)
					}
				}
				if want != http.StatusOK && !bytes.Equal(before, e.stateBytes()) {
					t.Error("a refused request changed the state file")
				}
			})
		}
	}
}

func TestAuthHeaderForms(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, header string
		want         int
		msg          string
	}{
		{"lower-case scheme", "bearer " + readSecret, http.StatusOK, ""},
		{"basic scheme", "Basic " + readSecret, http.StatusUnauthorized, "authorization must be a bearer token"},
		{"scheme only", "Bearer", http.StatusUnauthorized, "missing bearer token"},
		{"empty token", "Bearer  ", http.StatusUnauthorized, "missing bearer token"},
		{"token prefix", "Bearer " + readSecret[:len(readSecret)-1], http.StatusUnauthorized, "invalid token"},
		{"token with suffix", "Bearer " + readSecret + "x", http.StatusUnauthorized, "invalid token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v1/status", "", "", "Authorization", tc.header)
			if r.status != tc.want {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.want)
			}
			if tc.msg != "" {
				if got := r.errorMessage(t); got != tc.msg {
					t.Errorf("error = %q, want %q", got, tc.msg)
				}
			}
		})
	}
}

func TestDialMovesDNSAnswerAndSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.wantAnswer("api.example.test", addrR1)

	r := e.must(http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 0}, "reason": "drain r1"}`)
	var sv node.ServiceView
	r.decode(t, &sv)
	if got := dialOf(sv, "r1"); got != 0 {
		t.Errorf("answer dial of r1 = %d, want 0", got)
	}
	if r.header.Get("ETag") == "" || r.header.Get("ETag") != sv.ETag {
		t.Errorf("ETag header %q, want the service's etag %q", r.header.Get("ETag"), sv.ETag)
	}
	e.wantAnswer("api.example.test", addrR2)

	e.restart()
	if got := dialOf(e.service("api"), "r1"); got != 0 {
		t.Errorf("after restart dial of r1 = %d, want 0", got)
	}
	e.wantAnswer("api.example.test", addrR2)

	e.must(http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 100}}`)
	e.wantAnswer("api.example.test", addrR1)
}

func TestDialsAreAtomic(t *testing.T) {
	e := newEnv(t)
	e.must(http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 40, "r2": 60}}`)
	sv := e.service("api")
	if dialOf(sv, "r1") != 40 || dialOf(sv, "r2") != 60 {
		t.Fatalf("dials = %+v, want r1 40 and r2 60", sv.Regions)
	}
	// One bad region refuses the whole change.
	r := e.do(http.MethodPatch, "/v1/services/api/dials", writeSecret, `{"dials": {"r1": 10, "nowhere": 10}}`)
	if r.status != http.StatusBadRequest {
		t.Fatalf("got %d %s, want 400", r.status, r.body)
	}
	if got := dialOf(e.service("api"), "r1"); got != 40 {
		t.Errorf("dial of r1 = %d after a refused change, want 40", got)
	}
}

func TestBadRequestsChangeNothing(t *testing.T) {
	e := newEnv(t)
	// Make sure the state file exists, so "unchanged" compares real bytes.
	e.must(http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r2": 90}, "reason": "setup"}`)
	cases := []struct {
		name, method, path, body string
		want                     int
		msg                      string
	}{
		{"unknown service", http.MethodPatch, "/v1/services/nope/dials", `{"dials": {"r1": 10}}`, 404, `unknown service "nope"`},
		{"unknown region", http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r9": 10}}`, 400, `region "r9" is not a region of service "api"`},
		{"dial above 100", http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 101}}`, 400, `dial 101 for region "r1" is outside 0..100`},
		{"negative dial", http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": -1}}`, 400, `dial -1 for region "r1" is outside 0..100`},
		{"fractional dial", http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 10.5}}`, 400, `field "dials": expected int, got JSON number 10.5`},
		{"string dial", http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": "10"}}`, 400, `expected int, got JSON string`},
		{"malformed json", http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 10}`, 400, "malformed JSON"},
		{"not json", http.MethodPatch, "/v1/services/api/dials", `dials=10`, 400, "malformed JSON at byte 1"},
		{"unknown field", http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 10}, "why": "x"}`, 400, `unknown field "why"`},
		{"empty body", http.MethodPatch, "/v1/services/api/dials", ``, 400, "request body is empty"},
		{"no dials", http.MethodPatch, "/v1/services/api/dials", `{"reason": "x"}`, 400, `"dials" must name at least one region`},
		{"array body", http.MethodPatch, "/v1/services/api/dials", `[1]`, 400, "expected a JSON object"},
		{"two values", http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 10}} {}`, 400, "more than one JSON value"},
		{"long reason", http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 10}, "reason": "` + strings.Repeat("x", 1025) + `"}`, 400, "reason is 1025 bytes long"},
		{"body over 1 MiB", http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 10}, "reason": "` + strings.Repeat("x", 1<<20) + `"}`, 413, "larger than 1048576 bytes"},
		{"override unknown region", http.MethodPost, "/v1/regions/r9/override", `{"health": "down"}`, 404, `unknown region "r9"`},
		{"override bad health", http.MethodPost, "/v1/regions/r1/override", `{"health": "sideways"}`, 400, `health must be up, down or auto, not "sideways"`},
		{"override no health", http.MethodPost, "/v1/regions/r1/override", `{"reason": "x"}`, 400, `"health" is required`},
		{"reload unknown field", http.MethodPost, "/v1/reload", `{"force": true}`, 400, `unknown field "force"`},
		{"wrong method", http.MethodDelete, "/v1/services/api", ``, 405, "method DELETE is not allowed on /v1/services/api; use GET"},
		{"unknown path", http.MethodGet, "/v1/nothing", ``, 404, "no such endpoint: /v1/nothing"},
		{"explain without client", http.MethodGet, "/v1/explain?service=api", ``, 400, "service and client are required"},
		{"explain bad client", http.MethodGet, "/v1/explain?service=api&client=1.2.3", ``, 400, `client "1.2.3" is not an IP address`},
		{"explain unknown service", http.MethodGet, "/v1/explain?service=nope&client=1.2.3.4", ``, 404, `unknown service "nope"`},
		{"explain unknown parameter", http.MethodGet, "/v1/explain?service=api&client=1.2.3.4&verbose=1", ``, 400, `unknown query parameter "verbose"`},
		{"audit limit zero", http.MethodGet, "/v1/audit?limit=0", ``, 400, "limit must be a whole number from 1 to 10000"},
		{"audit limit too high", http.MethodGet, "/v1/audit?limit=10001", ``, 400, "limit must be a whole number from 1 to 10000"},
		{"audit limit word", http.MethodGet, "/v1/audit?limit=all", ``, 400, `not "all"`},
		{"audit limit twice", http.MethodGet, "/v1/audit?limit=1&limit=2", ``, 400, `query parameter "limit" is given 2 times`},
		{"service unknown", http.MethodGet, "/v1/services/nope", ``, 404, `unknown service "nope"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.stateBytes()
			r := e.do(tc.method, tc.path, writeSecret, tc.body)
			if r.status != tc.want {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.want)
			}
			if got := r.errorMessage(t); !strings.Contains(got, tc.msg) {
				t.Errorf("error = %q, want it to contain %q", got, tc.msg)
			}
			if !bytes.Equal(before, e.stateBytes()) {
				t.Error("state file changed")
			}
		})
	}
	if got := dialOf(e.service("api"), "r2"); got != 90 {
		t.Errorf("dial of r2 = %d, want 90 (unchanged)", got)
	}
}

func TestMethodNotAllowedListsAllow(t *testing.T) {
	e := newEnv(t)
	cases := []struct{ method, path, allow string }{
		{http.MethodPost, "/v1/status", "GET"},
		{http.MethodGet, "/v1/services/api/dials", "PATCH"},
		{http.MethodPut, "/v1/regions/r1/override", "POST"},
		{http.MethodGet, "/v1/reload", "POST"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := e.do(tc.method, tc.path, writeSecret, "")
			if r.status != http.StatusMethodNotAllowed {
				t.Fatalf("got %d, want 405", r.status)
			}
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
			r.errorMessage(t)
		})
	}
}

func TestIfMatch(t *testing.T) {
	e := newEnv(t)
	r := e.must(http.MethodGet, "/v1/services/api", "")
	etag := r.header.Get("ETag")
	if etag == "" {
		t.Fatal("GET /v1/services/api has no ETag")
	}
	r = e.must(http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 70}}`, "If-Match", etag)
	if next := r.header.Get("ETag"); next == "" || next == etag {
		t.Fatalf("ETag after the change = %q, want a new one (was %q)", next, etag)
	}

	before := e.stateBytes()
	r = e.do(http.MethodPatch, "/v1/services/api/dials", writeSecret, `{"dials": {"r1": 20}}`, "If-Match", etag)
	if r.status != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match: got %d %s, want 412", r.status, r.body)
	}
	if got := r.errorMessage(t); !strings.Contains(got, `service "api" changed since`) {
		t.Errorf("error = %q", got)
	}
	if !bytes.Equal(before, e.stateBytes()) {
		t.Error("a refused change altered the state file")
	}
	if got := dialOf(e.service("api"), "r1"); got != 70 {
		t.Errorf("dial of r1 = %d, want 70", got)
	}
	// "*" matches any existing service.
	e.must(http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 80}}`, "If-Match", "*")
	if got := dialOf(e.service("api"), "r1"); got != 80 {
		t.Errorf("dial of r1 = %d, want 80", got)
	}
}

func TestOverride(t *testing.T) {
	e := newEnv(t)
	e.wantAnswer("api.example.test", addrR1)

	var rv node.RegionView
	e.must(http.MethodPost, "/v1/regions/r1/override", `{"health": "down", "reason": "maintenance"}`).decode(t, &rv)
	if rv.Name != "r1" || rv.Override != "down" || rv.Effective {
		t.Errorf("region = %+v, want r1 forced down and not serving", rv)
	}
	e.wantAnswer("api.example.test", addrR2)

	e.restart()
	e.wantAnswer("api.example.test", addrR2)

	e.must(http.MethodPost, "/v1/regions/r1/override", `{"health": "auto"}`).decode(t, &rv)
	if rv.Override != "auto" || !rv.Effective {
		t.Errorf("region = %+v, want r1 back on auto and serving", rv)
	}
	e.wantAnswer("api.example.test", addrR1)
}

func TestExplain(t *testing.T) {
	e := newEnv(t)
	var ex policy.Explanation
	e.must(http.MethodGet, "/v1/explain?service=api&client=192.0.2.77", "").decode(t, &ex)
	if ex.Service != "api" || ex.Policy != "failover" {
		t.Errorf("explanation of %q policy %q, want api failover", ex.Service, ex.Policy)
	}
	if len(ex.Regions) != 2 || len(ex.Order) == 0 || ex.Order[0] != "r1" {
		t.Fatalf("regions %+v order %v, want two regions and r1 first", ex.Regions, ex.Order)
	}
	if ex.Client.Addr != "192.0.2.77" {
		t.Errorf("client = %q, want 192.0.2.77", ex.Client.Addr)
	}

	e.must(http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 0}}`)
	e.must(http.MethodGet, "/v1/explain?service=api&client=::ffff:192.0.2.77", "").decode(t, &ex)
	if len(ex.Order) == 0 || ex.Order[0] != "r2" {
		t.Errorf("order %v after draining r1, want r2 first", ex.Order)
	}
	if ex.Client.Addr != "192.0.2.77" {
		t.Errorf("client = %q, want the mapped address unmapped", ex.Client.Addr)
	}
	for _, r := range ex.Regions {
		if r.Name == "r1" && (r.Eligible || r.Dial != 0) {
			t.Errorf("r1 verdict %+v, want dial 0 and not eligible", r)
		}
	}
}

func TestAudit(t *testing.T) {
	e := newEnv(t)
	e.must(http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 50}, "reason": "first"}`)
	e.must(http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 25}, "reason": "second"}`)
	e.must(http.MethodPost, "/v1/regions/r2/override", `{"health": "up", "reason": "third"}`)

	var body admin.AuditBody
	e.must(http.MethodGet, "/v1/audit?limit=2", "").decode(t, &body)
	if len(body.Entries) != 2 {
		t.Fatalf("got %d entries, want 2", len(body.Entries))
	}
	got := body.Entries[0]
	if got.Action != "override" || got.Target != "region r2" || got.Old != "auto" || got.New != "up" ||
		got.Reason != "third" || got.Token != "ops" || got.Time.IsZero() {
		t.Errorf("newest entry = %+v", got)
	}
	got = body.Entries[1]
	if got.Action != "dial" || got.Target != "api/r1" || got.Old != "50" || got.New != "25" ||
		got.Reason != "second" || got.Token != "ops" {
		t.Errorf("second newest entry = %+v", got)
	}
	if body.Entries[0].Seq <= body.Entries[1].Seq {
		t.Errorf("entries not newest first: seq %d then %d", body.Entries[0].Seq, body.Entries[1].Seq)
	}

	// The default limit returns all three; a read token may read them.
	r := e.do(http.MethodGet, "/v1/audit", readSecret, "")
	if r.status != http.StatusOK {
		t.Fatalf("got %d, want 200", r.status)
	}
	r.decode(t, &body)
	if len(body.Entries) != 3 || body.Entries[2].Reason != "first" {
		t.Errorf("got %+v, want 3 entries, the oldest last", body.Entries)
	}
}

func TestReload(t *testing.T) {
	e := newEnv(t)
	var st node.StatusView
	e.must(http.MethodGet, "/v1/status", "").decode(t, &st)
	gen := st.Generation
	errorsBefore := e.metric(`meridian_config_reloads_total{result="error"}`)

	good := e.config("")
	lines := strings.Count(good, "\n")
	writeFile(t, e.cfgPath, good+"bogus: 1\n")
	r := e.do(http.MethodPost, "/v1/reload", writeSecret, `{"reason": "try a broken file"}`)
	if r.status != http.StatusBadRequest {
		t.Fatalf("broken config: got %d %s, want 400", r.status, r.body)
	}
	wantPos := fmt.Sprintf("%s:%d:", e.cfgPath, lines+1)
	if got := r.errorMessage(t); !strings.Contains(got, wantPos) || !strings.Contains(got, `"bogus"`) {
		t.Errorf("error = %q, want %s naming the key", got, wantPos)
	}
	if got := e.metric(`meridian_config_reloads_total{result="error"}`); got != errorsBefore+1 {
		t.Errorf("reload errors = %v, want %v", got, errorsBefore+1)
	}
	e.wantAnswer("api.example.test", addrR1)
	e.must(http.MethodGet, "/v1/status", "").decode(t, &st)
	if st.Generation != gen {
		t.Errorf("generation = %d after a refused reload, want %d", st.Generation, gen)
	}

	// A good config with a second service and a rotated read token.
	writeFile(t, e.cfgPath+".token", "r-rotated-0123456789\n")
	next := strings.Replace(good, "secret_file: read.token", "secret_file: config.yaml.token", 1) + `  - name: www
    hostnames: [www.example.test]
    mode: dns
    policy: failover
    regions: [r2, r1]
`
	writeFile(t, e.cfgPath, next)
	e.must(http.MethodPost, "/v1/reload", "").decode(t, &st)
	if st.Generation != gen+1 {
		t.Errorf("generation = %d after a good reload, want %d", st.Generation, gen+1)
	}
	if got := e.metric(`meridian_config_reloads_total{result="ok"}`); got < 1 {
		t.Errorf("reloads ok = %v, want at least 1", got)
	}
	e.wantAnswer("www.example.test", addrR2)
	if r := e.do(http.MethodGet, "/v1/status", readSecret, ""); r.status != http.StatusUnauthorized {
		t.Errorf("old read token after rotation: got %d, want 401", r.status)
	}
	if r := e.do(http.MethodGet, "/v1/status", "r-rotated-0123456789", ""); r.status != http.StatusOK {
		t.Errorf("new read token after rotation: got %d %s, want 200", r.status, r.body)
	}
}

func TestReloadIsAudited(t *testing.T) {
	e := newEnv(t)
	e.must(http.MethodPost, "/v1/reload", `{"reason": "rotate tokens"}`)
	var body admin.AuditBody
	e.must(http.MethodGet, "/v1/audit?limit=1", "").decode(t, &body)
	if len(body.Entries) != 1 {
		t.Fatalf("audit = %+v, want the reload", body.Entries)
	}
	got := body.Entries[0]
	if got.Action != "reload" || got.Token != "ops" || got.Reason != "rotate tokens" || got.Old != "1" || got.New != "2" {
		t.Errorf("newest audit entry = %+v, want the reload from 1 to 2 by ops", got)
	}
}

func TestServicesAndStatus(t *testing.T) {
	e := newEnv(t)
	var body admin.ServicesBody
	e.must(http.MethodGet, "/v1/services", "").decode(t, &body)
	if len(body.Services) != 1 || body.Services[0].Name != "api" || len(body.Services[0].Regions) != 2 {
		t.Fatalf("services = %+v", body.Services)
	}
	var st node.StatusView
	e.must(http.MethodGet, "/v1/status", "").decode(t, &st)
	if st.Node != "test-edge" || len(st.Regions) != 2 || st.Regions[0].Name != "r1" {
		t.Errorf("status = %+v", st)
	}
	if len(st.Regions[0].Endpoints) != 1 || st.Regions[0].Endpoints[0].LastCheck.IsZero() {
		t.Errorf("region r1 endpoints = %+v, want one checked endpoint", st.Regions[0].Endpoints)
	}
	// The node's own endpoints need no token.
	for _, p := range []string{"/health/live", "/health/ready", "/metrics"} {
		if r := e.do(http.MethodGet, p, "", ""); r.status != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want 200", p, r.status)
		}
	}
	// Every answer is JSON that parses.
	r := e.must(http.MethodGet, "/v1/status", "")
	if !json.Valid(r.body) {
		t.Errorf("status body is not JSON: %s", r.body)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}
