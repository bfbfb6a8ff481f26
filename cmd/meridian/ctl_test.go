package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meridian-edge/meridian/admin"
	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/node"
)

// Tokens of the test node: ops may change, grafana may only read.
//
//nolint:gosec // G101: fixed credentials of throwaway test nodes
const (
	ctlWriteSecret = "w-5e7a1c3b9d2f4e6a"
	ctlReadSecret  = "r-2b4d6f8a0c1e3d5f"
)

// ctlNode starts a node with two regions (eu-west, us-east) whose
// endpoints are httptest servers, and returns its admin API URL.
func ctlNode(t *testing.T) (*node.Node, string) {
	t.Helper()
	dir := t.TempDir()
	var urls []string
	for range 2 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ok\n")
		}))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	for name, secret := range map[string]string{"ops.token": ctlWriteSecret, "read.token": ctlReadSecret} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "config.yaml")
	text := fmt.Sprintf(`node: {name: ctl-edge, drain: 0s, addresses: [127.0.0.1]}
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
    location: {lat: 53.3, lon: -6.3}
    endpoints: [{address: 192.0.2.1, url: "%s"}]
    health: {interval: 100ms, timeout: 1s, rise: 1, fall: 1}
  - name: us-east
    location: {lat: 38.9, lon: -77.4}
    endpoints: [{address: 192.0.2.2, url: "%s"}]
    health: {interval: 100ms, timeout: 1s, rise: 1, fall: 1}
zones:
  - name: example.test
    nameservers: [ns1.example.test]
    records: ["ns1 3600 A 127.0.0.1"]
services:
  - name: api
    hostnames: [api.example.test]
    mode: dns
    policy: failover
    regions: [eu-west, us-east]
  - name: web
    hostnames: [web.example.test]
    mode: proxy
    policy: failover
    regions: [us-east, eu-west]
`, filepath.Join(dir, "state.json"), urls[0], urls[1])
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := node.New(cfg, node.Options{Logger: log, ConfigPath: path, Admin: adminHandler(log)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for st := n.Status(); !st.Regions[0].Up || !st.Regions[1].Up; st = n.Status() {
		if time.Now().After(deadline) {
			t.Fatal("regions did not come up in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return n, "http://" + n.Addr("admin").String()
}

// ctl runs "meridian ctl args..." in-process.
func ctl(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(append([]string{"ctl"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func noLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

func TestCtlAgainstNode(t *testing.T) {
	noLeaks(t)
	n, url := ctlNode(t)
	w := []string{"--admin", url, "--token", ctlWriteSecret}

	t.Run("status table", func(t *testing.T) {
		code, out, errOut := ctl(append(w, "status")...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"ctl-edge", "REGION", "eu-west", "us-east", "config generation"} {
			if !strings.Contains(out, want) {
				t.Errorf("status output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("services table", func(t *testing.T) {
		code, out, errOut := ctl(append(w, "services")...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"SERVICE", "api", "failover", "eu-west", "us-east", "100%"} {
			if !strings.Contains(out, want) {
				t.Errorf("services output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("dial with flags after the arguments", func(t *testing.T) {
		code, out, errOut := ctl("dial", "api", "eu-west", "0", "--reason", "drain eu-west", "--admin", url, "--token", ctlWriteSecret)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.Contains(out, "dial of eu-west set to 0%") {
			t.Errorf("dial output:\n%s", out)
		}
		if got := ctlDialOf(t, url, "api", "eu-west"); got != 0 {
			t.Errorf("dial of eu-west = %d, want 0", got)
		}
	})
	t.Run("dial with -o json", func(t *testing.T) {
		code, out, errOut := ctl(append(w, "-o", "json", "dial", "api", "eu-west", "35%")...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var sv node.ServiceView
		if err := json.Unmarshal([]byte(out), &sv); err != nil {
			t.Fatalf("output is not the service JSON: %v\n%s", err, out)
		}
		if sv.Name != "api" || sv.Regions[0].Dial != 35 {
			t.Errorf("service = %+v, want api with eu-west at 35", sv)
		}
	})
	t.Run("status -o json", func(t *testing.T) {
		code, out, _ := ctl(append(w, "status", "-o", "json")...)
		var st node.StatusView
		if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
			t.Fatalf("exit %d, output not JSON: %v\n%s", code, err, out)
		}
		if st.Node != "ctl-edge" || len(st.Regions) != 2 {
			t.Errorf("status = %+v", st)
		}
	})
	t.Run("override", func(t *testing.T) {
		code, out, errOut := ctl(append(w, "override", "us-east", "down", "--reason", "maintenance")...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.Contains(out, "region us-east: override down") {
			t.Errorf("override output:\n%s", out)
		}
		if code, _, errOut := ctl(append(w, "override", "us-east", "auto")...); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("explain", func(t *testing.T) {
		code, out, errOut := ctl(append(w, "explain", "api", "192.0.2.99")...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"api (failover, dns)", "192.0.2.99", "order", "eu-west", "us-east", "ELIGIBLE",
			"dns answer", "api.example.test NOERROR (ECS 192.0.2.0/24, scope /24)"} {
			if !strings.Contains(out, want) {
				t.Errorf("explain output lacks %q:\n%s", want, out)
			}
		}
		if !regexp.MustCompile(`A 192\.0\.2\.[12] ttl \d+`).MatchString(out) {
			t.Errorf("explain output lacks the A record:\n%s", out)
		}
		code, out, _ = ctl(append(w, "explain", "api", "192.0.2.99", "-o", "json")...)
		var ex node.Explanation
		if err := json.Unmarshal([]byte(out), &ex); err != nil || code != 0 || len(ex.Order) == 0 {
			t.Errorf("explain -o json: exit %d, %v\n%s", code, err, out)
		}
		if ex.DNS == nil || len(ex.DNS.Records) != 1 || ex.DNS.Records[0].Type != "A" || ex.Proxy != nil {
			t.Errorf("explain -o json: dns %+v, proxy %+v", ex.DNS, ex.Proxy)
		}
		// A proxy-mode service: DNS answers the node's address, and the
		// proxy names the endpoint of its first attempt.
		code, out, errOut = ctl(append(w, "explain", "web", "2001:db8::1", "-o", "json")...)
		ex = node.Explanation{}
		if err := json.Unmarshal([]byte(out), &ex); err != nil || code != 0 {
			t.Fatalf("explain web: exit %d, %v\n%s%s", code, err, out, errOut)
		}
		// (a dial under 100 makes the api answer depend on the client's
		// /24; the node's own address depends on nobody: scope 0)
		if ex.DNS == nil || ex.DNS.ECS != "2001:db8::/56" || len(ex.DNS.Records) != 1 || ex.DNS.Records[0].Value != "127.0.0.1" ||
			ex.DNS.Scope == nil || *ex.DNS.Scope != 0 {
			t.Errorf("explain web dns: %+v", ex.DNS)
		}
		usEast := n.Status().Regions[1].Endpoints[0].Endpoint
		if ex.Proxy == nil || ex.Proxy.Region != "us-east" || ex.Proxy.Endpoint != usEast {
			t.Errorf("explain web proxy: %+v, want us-east %s", ex.Proxy, usEast)
		}
	})
	t.Run("audit", func(t *testing.T) {
		code, out, errOut := ctl(append(w, "audit", "--limit", "10")...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"TOKEN", "ops", "dial", "api/eu-west", "drain eu-west", "maintenance"} {
			if !strings.Contains(out, want) {
				t.Errorf("audit output lacks %q:\n%s", want, out)
			}
		}
		code, out, _ = ctl(append(w, "audit", "--limit", "1", "-o", "json")...)
		var body admin.AuditBody
		if err := json.Unmarshal([]byte(out), &body); err != nil || code != 0 || len(body.Entries) != 1 {
			t.Errorf("audit -o json: exit %d, %v\n%s", code, err, out)
		}
	})
	t.Run("reload", func(t *testing.T) {
		code, out, errOut := ctl(append(w, "reload", "--reason", "test")...)
		if code != 0 || !strings.Contains(out, "config reloaded: generation 2") {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
	})
	t.Run("token from MERIDIAN_TOKEN", func(t *testing.T) {
		t.Setenv("MERIDIAN_TOKEN", ctlReadSecret)
		code, out, errOut := ctl("--admin", url, "services")
		if code != 0 || !strings.Contains(out, "api") {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
	})
}

func ctlDialOf(t *testing.T, url, service, region string) int {
	t.Helper()
	code, out, errOut := ctl("--admin", url, "--token", ctlReadSecret, "-o", "json", "services")
	if code != 0 {
		t.Fatalf("services: exit %d: %s", code, errOut)
	}
	var body admin.ServicesBody
	if err := json.Unmarshal([]byte(out), &body); err != nil {
		t.Fatal(err)
	}
	for _, s := range body.Services {
		for _, r := range s.Regions {
			if s.Name == service && r.Name == region {
				return r.Dial
			}
		}
	}
	t.Fatalf("no region %s in service %s", region, service)
	return -1
}

func TestCtlErrors(t *testing.T) {
	noLeaks(t)
	_, url := ctlNode(t)
	closed := closedPort(t)
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no token", []string{"--admin", url, "--token", "", "status"}, 1, "unauthorized: check --token or MERIDIAN_TOKEN"},
		{"bad token", []string{"--admin", url, "--token", "nope", "status"}, 1, "unauthorized: check --token or MERIDIAN_TOKEN (invalid token)"},
		{"read token on a change", []string{"--admin", url, "--token", ctlReadSecret, "dial", "api", "eu-west", "5"}, 1, "forbidden: the token is read-only"},
		{"unknown service", []string{"--admin", url, "--token", ctlWriteSecret, "dial", "nope", "eu-west", "5"}, 1, `not found: unknown service "nope"`},
		{"unknown region", []string{"--admin", url, "--token", ctlWriteSecret, "override", "mars", "down"}, 1, `not found: unknown region "mars"`},
		{"region not in service", []string{"--admin", url, "--token", ctlWriteSecret, "dial", "api", "mars", "5"}, 1, `refused: region "mars" is not a region of service "api"`},
		{"unreachable", []string{"--admin", closed, "--token", ctlWriteSecret, "status"}, 1, "cannot reach meridian admin API at " + closed + ": "},
		{"no subcommand", []string{"--admin", url}, 2, "usage: meridian ctl"},
		{"unknown subcommand", []string{"frobnicate"}, 2, `unknown subcommand "frobnicate"`},
		{"missing arguments", []string{"dial", "api", "eu-west"}, 2, "dial takes 3 argument(s), got 2; usage: meridian ctl dial SERVICE REGION PERCENT [--reason TEXT]"},
		{"extra argument", []string{"status", "now"}, 2, "status takes 0 argument(s), got 1"},
		{"percent over 100", []string{"dial", "api", "eu-west", "101"}, 2, `PERCENT must be a whole number from 0 to 100, not "101"`},
		{"percent not a number", []string{"dial", "api", "eu-west", "half"}, 2, `not "half"`},
		{"bad health", []string{"override", "eu-west", "sideways"}, 2, `health must be up, down or auto, not "sideways"`},
		{"bad client ip", []string{"explain", "api", "999.1.1.1"}, 2, `CLIENT_IP "999.1.1.1" is not an IP address`},
		{"bad output", []string{"-o", "yaml", "status"}, 2, `-o must be table or json, not "yaml"`},
		{"flag of another subcommand", []string{"status", "--limit", "5"}, 2, "flag --limit does not apply to status"},
		{"unknown flag", []string{"status", "--verbose"}, 2, "flag provided but not defined: -verbose"},
		{"zero limit", []string{"--admin", url, "audit", "--limit", "0"}, 2, "--limit must be at least 1"},
		{"bad admin url", []string{"--admin", "ftp://x", "status"}, 2, `--admin "ftp://x" is not an http(s) URL`},
		{"not meridian", []string{"--admin", notMeridian(t), "--token", ctlWriteSecret, "status"}, 1, `answered "404 Not Found", but not as a meridian admin API`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MERIDIAN_TOKEN", "")
			code, out, errOut := ctl(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.code, out, errOut)
			}
			if !strings.Contains(errOut, tc.msg) {
				t.Errorf("stderr = %q, want it to contain %q", errOut, tc.msg)
			}
		})
	}
}

// notMeridian is the URL of an HTTP server that is not a meridian admin
// API (a metrics exporter on the port, say).
func notMeridian(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCtlHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		code, out, _ := ctl(arg)
		if code != 0 || !strings.Contains(out, "dial SERVICE REGION PERCENT") {
			t.Errorf("ctl %s: exit %d, output %q", arg, code, out)
		}
	}
}

// closedPort returns the URL of a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestSplitArgs(t *testing.T) {
	cases := []struct {
		name       string
		args       []string
		flags, pos []string
	}{
		{"flags first", []string{"--admin", "u", "status"}, []string{"--admin", "u"}, []string{"status"}},
		{"flags last", []string{"dial", "api", "eu", "0", "--reason", "x y"}, []string{"--reason", "x y"}, []string{"dial", "api", "eu", "0"}},
		{"equals form", []string{"dial", "--reason=x", "api"}, []string{"--reason=x"}, []string{"dial", "api"}},
		{"single dash", []string{"-o", "json", "status"}, []string{"-o", "json"}, []string{"status"}},
		{"double dash ends flags", []string{"dial", "--", "-api", "eu", "0"}, nil, []string{"dial", "-api", "eu", "0"}},
		{"unknown flag takes no value", []string{"--what", "status"}, []string{"--what"}, []string{"status"}},
		{"lone dash is positional", []string{"-", "status"}, nil, []string{"-", "status"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f ctlFlags
			flags, pos := splitArgs(newCtlFlagSet(&f), tc.args)
			if !reflect.DeepEqual(flags, tc.flags) || !reflect.DeepEqual(pos, tc.pos) {
				t.Errorf("splitArgs(%q) = %q, %q; want %q, %q", tc.args, flags, pos, tc.flags, tc.pos)
			}
		})
	}
	var f ctlFlags
	fs := newCtlFlagSet(&f)
	if err := fs.Parse([]string{"--reason", "r", "--limit", "3"}); err != nil || f.reason != "r" || f.limit != 3 {
		t.Errorf("parsed %+v, %v", f, err)
	}
}
