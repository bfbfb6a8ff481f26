package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/node"
)

// chromium finds the browser the dashboard tests drive. CI installs it
// (Debian's chromium package): there, a missing browser fails the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium on PATH: .ci/run installs Debian's chromium package")
	}
	t.Skip("no chromium on PATH (apt-get install chromium)")
	return ""
}

// switchable is an upstream whose health checks pass until failing is set.
type switchable struct {
	srv     *httptest.Server
	failing atomic.Bool
}

func newSwitchable(t *testing.T) *switchable {
	u := &switchable{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if u.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// dashNode starts a node with two regions whose upstreams the test flips,
// a dns-mode service and the admin API with a read and a write token.
func dashNode(t *testing.T) (n *node.Node, ups map[string]*switchable) {
	t.Helper()
	dir := t.TempDir()
	ups = map[string]*switchable{"eu-west": newSwitchable(t), "us-east": newSwitchable(t)}
	for name, secret := range map[string]string{"ops.token": ctlWriteSecret, "read.token": ctlReadSecret} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "config.yaml")
	text := fmt.Sprintf(`node: {name: dash-edge, drain: 0s, addresses: [127.0.0.1]}
listen:
  dns: ["127.0.0.1:0"]
  http: ["127.0.0.1:0"]
  admin: "127.0.0.1:0"
admin:
  tokens:
    - {name: ops, role: write, secret_file: ops.token}
    - {name: grafana, role: read, secret_file: read.token}
state: {path: %s}
regions:
  - name: eu-west
    endpoints: [{address: 192.0.2.1, url: "%s"}]
    health: {interval: 100ms, timeout: 1s, rise: 1, fall: 1}
  - name: us-east
    endpoints: [{address: 192.0.2.2, url: "%s"}]
    health: {interval: 100ms, timeout: 1s, rise: 1, fall: 1}
zones:
  - name: example.test
    nameservers: [ns1.example.test]
    records: ["ns1 3600 A 127.0.0.1"]
services:
  - {name: api, hostnames: [api.example.test], mode: dns, policy: failover, regions: [eu-west, us-east]}
  - {name: web, hostnames: [web.example.test], mode: proxy, policy: failover, regions: [us-east, eu-west]}
`, filepath.Join(dir, "state.json"), ups["eu-west"].srv.URL, ups["us-east"].srv.URL)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err = node.New(cfg, node.Options{Logger: log, ConfigPath: path, Admin: adminHandler(log)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	poll(t, 10*time.Second, "regions up", func() bool {
		st := n.Status()
		return st.Regions[0].Up && st.Regions[1].Up
	})
	return n, ups
}

// browser is a headless Chromium tab that records every error the page
// reports: exceptions, console.error and console.warn, and browser log
// entries such as failed loads.
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1100),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	b := &browser{ctx: ctx}
	msgs := chromedp.Console(ctx) // starts the browser
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
				b.mu.Lock()
				b.errors = append(b.errors, m.String()+" "+m.URL)
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// do runs steps within 30 s.
func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		page, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%s: %v\npage errors: %q\npage:\n%s", what, err, b.errorsSeen(), page)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// text is the text of the first element matching the CSS selector sel,
// "" when there is none.
func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	q, _ := json.Marshal(sel)
	return strings.TrimSpace(eval[string](t, b, fmt.Sprintf(`(document.querySelector(%s) || {}).textContent || ""`, q)))
}

func (b *browser) waitText(t *testing.T, d time.Duration, sel, want string) time.Duration {
	t.Helper()
	start := time.Now()
	var got string
	for time.Since(start) < d {
		if got = b.text(t, sel); got == want {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: got %q after %v, want %q", sel, got, d, want)
	return 0
}

func (b *browser) errorsSeen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// artifactDir is where the tests leave what a person looks at: the
// MERIDIAN_ARTIFACTS folder, else one in the system's temp folder.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("MERIDIAN_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "meridian-artifacts")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	return dir
}

func askA(t *testing.T, addr, name string) string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil || len(r.Answer) == 0 {
		return ""
	}
	if a, ok := r.Answer[0].(*dns.A); ok {
		return a.A.String()
	}
	return ""
}

// TestDashboard drives the admin listener's dashboard in headless
// Chromium: a read token sees every region and its state and no controls;
// a region going down shows within 3 s; a write token sets a dial through
// the confirmation step and DNS answers follow; the page reports no error;
// a screenshot of the main view is left in the artifacts folder.
func TestDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	n, ups := dashNode(t)
	base := "http://" + n.Addr("admin").String()
	dnsAddr := n.Addr("dns/0").String()
	b := newBrowser(t)

	// The page and its assets carry a strict CSP.
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}

	b.do(t, "opening the dashboard", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	b.do(t, "signing in with the read token",
		chromedp.SendKeys(chromedp.ID("token"), ctlReadSecret),
		chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-health="us-east"]`)))
	for _, r := range []string{"eu-west", "us-east"} {
		b.waitText(t, 3*time.Second, fmt.Sprintf(`[data-health=%q]`, r), "up")
	}
	if got := b.text(t, "#who"); got != "signed in as grafana (read)" {
		t.Errorf("who: %q", got)
	}
	if eval[bool](t, b, `!!document.querySelector('[data-set-dial="api/eu-west"]').offsetParent`) {
		t.Error("a read token sees the dial controls")
	}
	stored := eval[string](t, b, `sessionStorage.getItem('meridian.token') + '|' + location.href`)
	if !strings.HasPrefix(stored, ctlReadSecret+"|") || strings.Contains(strings.SplitN(stored, "|", 2)[1], ctlReadSecret) {
		t.Errorf("token storage and URL: %q", stored)
	}

	// A region going down shows within 3 s.
	ups["us-east"].failing.Store(true)
	took := b.waitText(t, 3*time.Second, `[data-health="us-east"]`, "down")
	t.Logf("us-east down shown after %v", took)
	ups["us-east"].failing.Store(false)
	b.waitText(t, 3*time.Second, `[data-health="us-east"]`, "up")

	// The write token: set api's eu-west dial to 0 and DNS moves to us-east.
	if got := askA(t, dnsAddr, "api.example.test"); got != "192.0.2.1" {
		t.Fatalf("before the dial change: api answers %q, want 192.0.2.1", got)
	}
	b.do(t, "signing in with the write token",
		chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), ctlWriteSecret),
		chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-set-dial="api/eu-west"]`)))
	eval[bool](t, b, `(() => { const e = document.querySelector('[data-dial="api/eu-west"]'); e.focus(); e.select(); return true })()`)
	b.do(t, "typing the dial", chromedp.SendKeys(chromedp.CSS(`[data-dial="api/eu-west"]`), "0"))
	eval[bool](t, b, `(() => { document.activeElement.blur(); return true })()`) // edited, then left: refreshes must not undo it
	time.Sleep(2 * time.Second)                                                  // refreshes update the page: what was typed stays
	if got := eval[string](t, b, `document.querySelector('[data-dial="api/eu-west"]').value`); got != "0" {
		t.Fatalf("the typed dial became %q after a refresh", got)
	}
	b.do(t, "asking to set it", chromedp.Click(chromedp.CSS(`[data-set-dial="api/eu-west"]`)), chromedp.WaitVisible(chromedp.ID("confirm-ok")))
	if got := b.text(t, "#confirm-text"); got != "Set the dial of eu-west in api from 100% to 0%?" {
		t.Errorf("confirmation: %q", got)
	}
	b.do(t, "confirming", chromedp.SendKeys(chromedp.ID("confirm-reason"), "drain eu-west"), chromedp.Click(chromedp.ID("confirm-ok")))
	b.waitText(t, 3*time.Second, `[data-dial-value="api/eu-west"]`, "0%")
	poll(t, 3*time.Second, "api answered from us-east", func() bool { return askA(t, dnsAddr, "api.example.test") == "192.0.2.2" })
	if a := n.Audit(1); len(a) != 1 || a[0].Token != "ops" || a[0].Reason != "drain eu-west" {
		t.Errorf("audit after the dashboard's change: %+v", a)
	}

	// Traffic shows in the split: DNS answers per region.
	for range 20 {
		askA(t, dnsAddr, "api.example.test")
	}
	time.Sleep(2 * time.Second)
	sctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(artifactDir(t), "dashboard.png")
	if err := os.WriteFile(shot, png, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	if errs := b.errorsSeen(); len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}
