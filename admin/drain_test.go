package admin_test

import (
	"net/http"
	"testing"

	"github.com/meridian-edge/meridian/admin"
	"github.com/meridian-edge/meridian/node"
)

// TestDrainEndpoints: drain needs a write token, turns readiness 503,
// is audited with the reason, and undrain undoes it.
func TestDrainEndpoints(t *testing.T) {
	e := newEnv(t)
	if r := e.do(http.MethodPost, "/v1/node/drain", readSecret, `{"reason": "x"}`); r.status != http.StatusForbidden {
		t.Fatalf("drain with a read token: got %d, want 403", r.status)
	}
	if r := e.do(http.MethodPost, "/v1/node/drain", writeSecret, `{"reason": 5}`); r.status != http.StatusBadRequest {
		t.Fatalf("drain with a bad body: got %d, want 400", r.status)
	}
	if r := e.do(http.MethodGet, "/v1/node/drain", writeSecret, ""); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET drain: got %d, want 405", r.status)
	}
	var dv node.DrainView
	e.must(http.MethodPost, "/v1/node/drain", `{"reason": "kernel upgrade"}`).decode(t, &dv)
	if !dv.Drained || dv.Ready || dv.Reason != "kernel upgrade" || dv.Token != "ops" || dv.Announced != nil {
		t.Fatalf("drain answer: got %+v", dv)
	}
	if r := e.do(http.MethodGet, "/health/ready", "", ""); r.status != http.StatusServiceUnavailable || string(r.body) != "drained\n" {
		t.Fatalf("/health/ready: got %d %q, want 503 drained", r.status, r.body)
	}
	var st node.StatusView
	e.must(http.MethodGet, "/v1/status", "").decode(t, &st)
	if st.Drained == nil || st.Drained.Reason != "kernel upgrade" || st.Ready {
		t.Errorf("status: got drained %+v ready %v", st.Drained, st.Ready)
	}
	e.must(http.MethodPost, "/v1/node/undrain", "").decode(t, &dv)
	if dv.Drained {
		t.Fatalf("undrain answer: got %+v", dv)
	}
	waitFor(t, "ready after undrain", func() bool { return e.do(http.MethodGet, "/health/ready", "", "").status == http.StatusOK })
	var audit admin.AuditBody
	e.must(http.MethodGet, "/v1/audit?limit=2", "").decode(t, &audit)
	if len(audit.Entries) != 2 || audit.Entries[0].Action != "undrain" || audit.Entries[1].Action != "drain" ||
		audit.Entries[1].Reason != "kernel upgrade" || audit.Entries[1].Target != "node test-edge" {
		t.Errorf("audit: got %+v", audit.Entries)
	}
}
