package admin

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/node"
	"github.com/meridian-edge/meridian/state"
)

// fakeBackend answers every change with err and records the last actor.
type fakeBackend struct {
	err   error
	actor node.Actor
	dials map[string]int
	match string
}

func (f *fakeBackend) Status() node.StatusView      { return node.StatusView{Node: "fake"} }
func (f *fakeBackend) Services() []node.ServiceView { return nil }
func (f *fakeBackend) Service(string) (node.ServiceView, error) {
	return node.ServiceView{}, f.err
}

func (f *fakeBackend) SetDials(_ string, dials map[string]int, ifMatch string, who node.Actor) (node.ServiceView, error) {
	f.actor, f.dials, f.match = who, dials, ifMatch
	return node.ServiceView{Name: "api", ETag: `"e1"`}, f.err
}

func (f *fakeBackend) SetOverride(_, _ string, who node.Actor) (node.RegionView, error) {
	f.actor = who
	return node.RegionView{}, f.err
}

func (f *fakeBackend) Explain(string, netip.Addr) (*node.Explanation, error) {
	return &node.Explanation{}, f.err
}
func (f *fakeBackend) Audit(int) []state.AuditEntry { return nil }
func (f *fakeBackend) Reload(who node.Actor) error {
	f.actor = who
	return f.err
}

func TestErrorKinds(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"ok", nil, http.StatusOK},
		{"not found", fmt.Errorf("finding: %w", node.ErrNotFound), http.StatusNotFound},
		{"invalid", fmt.Errorf("checking: %w", node.ErrInvalid), http.StatusBadRequest},
		{"conflict", fmt.Errorf("a shift runs: %w", node.ErrConflict), http.StatusConflict},
		{"precondition", fmt.Errorf("etag: %w", node.ErrPrecondition), http.StatusPreconditionFailed},
		{"anything else", errors.New("saving state: disk full"), http.StatusInternalServerError},
	}
	cfg := config.Admin{Tokens: []config.Token{{Name: "ops", Role: "write", Secret: "s3cret"}}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fb := &fakeBackend{err: tc.err}
			srv := httptest.NewServer(New(fb, cfg, Options{Logger: slog.New(slog.DiscardHandler)}))
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodPatch, srv.URL+"/v1/services/api/dials",
				strings.NewReader(`{"dials": {"eu": 5}, "reason": "why"}`))
			req.Header.Set("Authorization", "Bearer s3cret")
			req.Header.Set("If-Match", ` "e0" `)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, body, tc.want)
			}
			if tc.err != nil && !strings.Contains(string(body), `"error": "`+tc.err.Error()+`"`) {
				t.Errorf("body = %s, want the error message", body)
			}
			if fb.actor != (node.Actor{Token: "ops", Reason: "why"}) || fb.dials["eu"] != 5 || fb.match != `"e0"` {
				t.Errorf("backend got actor %+v dials %v if-match %q", fb.actor, fb.dials, fb.match)
			}
		})
	}
}

func TestKeyringLookup(t *testing.T) {
	ring := newKeyring([]config.Token{
		{Name: "a", Role: "read", Secret: "alpha"},
		{Name: "b", Role: "write", Secret: "bravo"},
		{Name: "unset", Role: "write", Secret: ""},
		{Name: "c", Role: "read", Secret: "charlie-longer-secret"},
	})
	cases := []struct {
		secret, name string
		write, ok    bool
	}{
		{"alpha", "a", false, true},
		{"bravo", "b", true, true},
		{"charlie-longer-secret", "c", false, true},
		{"", "", false, false},
		{"alph", "", false, false},
		{"bravo ", "", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.secret, func(t *testing.T) {
			k, ok := ring.lookup(tc.secret)
			if ok != tc.ok || k.name != tc.name || k.write != tc.write {
				t.Errorf("lookup(%q) = %q write %v ok %v, want %q write %v ok %v", tc.secret, k.name, k.write, ok, tc.name, tc.write, tc.ok)
			}
		})
	}
}

func TestKeySourceFollowsConfig(t *testing.T) {
	first := []config.Token{{Name: "a", Role: "read", Secret: "alpha"}}
	second := []config.Token{{Name: "b", Role: "write", Secret: "bravo"}}
	cur := first
	src := &keySource{current: func() config.Admin { return config.Admin{Tokens: cur} }}
	if _, ok := src.get().lookup("alpha"); !ok {
		t.Fatal("first token not found")
	}
	cur = second
	if _, ok := src.get().lookup("alpha"); ok {
		t.Error("old token still accepted after the config changed")
	}
	if k, ok := src.get().lookup("bravo"); !ok || k.name != "b" {
		t.Errorf("new token: %q %v", k.name, ok)
	}
}
