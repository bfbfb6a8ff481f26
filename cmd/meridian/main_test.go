package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/config"
)

// childArgs, when set, makes the test binary run meridian's main with
// these arguments (separated by the ASCII unit separator, 0x1f) instead of
// the tests: a real process to send signals to.
const childArgs = "MERIDIAN_TEST_MAIN_ARGS"

func init() {
	if a := os.Getenv(childArgs); a != "" {
		os.Exit(run(strings.Split(a, "\x1f"), os.Stdout, os.Stderr))
	}
}

// child is meridian's main run in a process of its own.
type child struct {
	cmd *exec.Cmd
	// exited receives Wait's result once; a test that takes it puts it
	// back for the cleanup.
	exited         chan error
	stdout, stderr lockedBuffer
}

// startChild runs meridian with args in a child process, which is killed
// when the test ends; its output is logged when the test failed.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^$"), exited: make(chan error, 1)}
	c.cmd.Env = append(os.Environ(), childArgs+"="+strings.Join(args, "\x1f"))
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.exited <- c.cmd.Wait() }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		if err := <-c.exited; err != nil && t.Failed() {
			t.Logf("process ended: %v", err)
		}
		if t.Failed() {
			t.Logf("process output:\n%s\n%s", c.stdout.String(), c.stderr.String())
		}
	})
	return c
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("node:\n  name: x\n  drain: soon\nregions:\n  - name: a\n    endpoints: []\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Configs that parse but that run would refuse.
	serve := "regions:\n  - name: a\n    endpoints: [{address: 192.0.2.1}]\n    health: {type: none}\n" +
		"zones:\n  - name: example.test\n    nameservers: [ns1.example.test]\n" +
		"services:\n  - {name: api, hostnames: [api.example.test], policy: failover, regions: [a]}\n"
	idle := filepath.Join(dir, "idle.yaml")
	noGeo := filepath.Join(dir, "nogeo.yaml")
	badState := filepath.Join(dir, "badstate.yaml")
	noEtcd := filepath.Join(dir, "noetcd.yaml")
	closed := freePort(t)
	for path, text := range map[string]string{
		noEtcd: fmt.Sprintf("node: {name: x}\nlisten: {dns: [\"127.0.0.1:0\"]}\nstate: {backend: etcd, path: nocopy.json, "+
			"etcd: {endpoints: [\"http://127.0.0.1:%d\"], dial_timeout: 500ms}}\n", closed) + serve,
		idle:     "node: {name: x}\nlisten: {admin: \"127.0.0.1:0\"}\n" + serve,
		noGeo:    "node: {name: x}\nlisten: {dns: [\"127.0.0.1:0\"]}\ngeoip: {database: missing.mmdb}\n" + serve,
		badState: "node: {name: x}\nlisten: {dns: [\"127.0.0.1:0\"]}\nstate: {path: broken.json}\n" + serve,
	} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MERIDIAN_TOKEN", "first-node-secret")
	t.Setenv("MERIDIAN_OPS_TOKEN", "ops-secret")
	t.Setenv("MERIDIAN_READ_TOKEN", "read-secret")
	for _, tt := range []struct {
		name     string
		args     []string
		code     int
		out, err []string
	}{
		{"example config", []string{"validate", "--config", "../../configs/example.yaml"}, 0, []string{"../../configs/example.yaml: ok"}, nil},
		{"bench config", []string{"validate", "--config", "../../configs/bench.yaml"}, 0, []string{"ok"}, nil},
		{"bench config with rrl", []string{"validate", "--config", "../../configs/bench-rrl.yaml"}, 0, []string{"ok"}, nil},
		{"first node config", []string{"validate", "--config", "../../configs/first-node.yaml"}, 0, []string{"first-node.yaml: ok"}, nil},
		{"every error with file and line", []string{"validate", "--config", bad}, 1, nil,
			[]string{bad + ":3: ", bad + ":6: ", bad + ":7: "}},
		{"missing flag", []string{"validate"}, 2, nil, []string{"--config FILE is required"}},
		{"missing file", []string{"validate", "--config", filepath.Join(dir, "nope.yaml")}, 1, nil, []string{"nope.yaml"}},
		{"unknown command", []string{"frobnicate"}, 2, nil, []string{`unknown command "frobnicate"`}},
		{"nothing to serve", []string{"validate", "--config", idle}, 1, nil, []string{idle + ": nothing to serve: listen.dns, listen.http and listen.https are all empty"}},
		{"missing geoip database", []string{"validate", "--config", noGeo}, 1, nil, []string{noGeo + ": geoip.database: ", filepath.Join(dir, "missing.mmdb")}},
		{"unreadable state", []string{"validate", "--config", badState}, 1, nil, []string{badState + ": state.path: ", filepath.Join(dir, "broken.json")}},
		{"etcd away, no saved state", []string{"validate", "--config", noEtcd}, 1, nil, []string{noEtcd + ": state.etcd: etcd at http://127.0.0.1:", "no saved fleet state at " + filepath.Join(dir, "nocopy.json")}},
		{"version", []string{"version"}, 0, []string{"meridian "}, nil},
		{"run without its config", []string{"run", "--config", filepath.Join(dir, "absent.yaml")}, 1, nil, []string{"meridian run: no config at " + filepath.Join(dir, "absent.yaml") + ": write or mount one there"}},
		{"validate --help", []string{"validate", "--help"}, 0, []string{"usage: meridian validate --config FILE", "-config"}, nil},
		{"run --help", []string{"run", "--help"}, 0, []string{"usage: meridian run --config FILE", "SIGHUP reloads", "-log-format"}, nil},
		{"run -h", []string{"run", "-h"}, 0, []string{"usage: meridian run"}, nil},
		{"bad flag", []string{"run", "--frob"}, 2, nil, []string{"meridian run: flag provided but not defined: -frob", "-config"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(tt.args, &out, &errOut); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, errOut.String())
			}
			for _, w := range tt.out {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout %q lacks %q", out.String(), w)
				}
			}
			for _, w := range tt.err {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr %q lacks %q", errOut.String(), w)
				}
			}
		})
	}
}

// TestFleetConfigsLoad: the fleet examples parse. (validate also asks
// their etcd, which a test cannot count on.)
func TestFleetConfigsLoad(t *testing.T) {
	t.Setenv("MERIDIAN_OPS_TOKEN", "ops-secret")
	t.Setenv("MERIDIAN_READ_TOKEN", "read-secret")
	for i := 1; i <= 3; i++ {
		path := fmt.Sprintf("../../configs/fleet-edge-%d.yaml", i)
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if cfg.State.Backend != "etcd" || cfg.Node.Name != fmt.Sprintf("edge-%d", i) {
			t.Errorf("%s: backend %q, node %q", path, cfg.State.Backend, cfg.Node.Name)
		}
	}
}

func TestDemoConfigLoads(t *testing.T) {
	t.Setenv("MERIDIAN_DEMO_TOKEN", "demo-secret")
	path := filepath.Join(t.TempDir(), "demo.yaml")
	text := demoYAML(filepath.Join(t.TempDir(), "state.json"), demoAddrs{dns: "127.0.0.1:5353", http: "127.0.0.1:8080", admin: "127.0.0.1:9053", regionPort: "9100"})
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Regions) != 3 || len(cfg.Services) != 3 {
		t.Fatalf("demo config: %d regions, %d services", len(cfg.Regions), len(cfg.Services))
	}
}

// freePort returns a loopback port that was free a moment ago, for TCP
// and UDP both (a DNS listener binds the two). Another process may take
// it before the child binds it: a child that fails with "address already
// in use" is started again on new ports (see startedOrClash).
func freePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		_ = ln.Close()
		if err != nil {
			continue // its UDP twin is taken: try another
		}
		_ = pc.Close()
		return port
	}
	t.Fatal("no loopback port free for both TCP and UDP")
	return 0
}

// portClashAttempts bounds how often a child is started again after
// losing one of its ports to another process.
const portClashAttempts = 5

// startedOrClash waits until ready holds for a started child, for at most
// d. It returns false when the child exited because a port it was given
// was taken meanwhile (the caller starts it again on new ports); any
// other exit, or d passing, fails the test.
func startedOrClash(t *testing.T, c *child, d time.Duration, what string, ready func() bool) bool {
	t.Helper()
	clash := false
	poll(t, d, what, func() bool {
		select {
		case err := <-c.exited:
			c.exited <- err
			if strings.Contains(c.stderr.String(), "address already in use") {
				clash = true
				return true
			}
			t.Fatalf("%s: the process exited: %v\n%s", what, err, c.stderr.String())
		default:
		}
		return ready()
	})
	if clash {
		t.Logf("%s: a port was taken before the process bound it; starting it again on new ports", what)
	}
	return !clash
}

// TestRunSignals runs a real meridian process: SIGHUP reloads the config,
// SIGTERM turns readiness to 503 at once, keeps answering for node.drain
// and then exits 0.
func TestRunSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	var dnsPort, adminPort int
	cfgText := func(ttl string) string {
		return fmt.Sprintf(`
node: {name: sig-test, drain: 1s, shutdown_timeout: 2s}
listen: {dns: ["127.0.0.1:%d"], admin: "127.0.0.1:%d"}
state: {path: %s}
regions:
  - name: a
    endpoints: [{address: 192.0.2.1}]
    health: {type: none}
zones:
  - name: example.test
    nameservers: [ns1.example.test]
services:
  - {name: api, hostnames: [api.example.test], policy: failover, regions: [a], ttl: %s}
`, dnsPort, adminPort, filepath.Join(dir, "state.json"), ttl)
	}
	path := filepath.Join(dir, "meridian.yaml")
	status := func() int {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/health/ready", adminPort), nil)
		if err != nil {
			return 0
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ttl := func() uint32 {
		m := new(dns.Msg)
		m.SetQuestion("api.example.test.", dns.TypeA)
		r, _, err := (&dns.Client{Timeout: 500 * time.Millisecond}).Exchange(m, fmt.Sprintf("127.0.0.1:%d", dnsPort))
		if err != nil || len(r.Answer) == 0 {
			return 0
		}
		return r.Answer[0].Header().Ttl
	}
	var child *child
	for attempt := 1; ; attempt++ {
		dnsPort, adminPort = freePort(t), freePort(t)
		if err := os.WriteFile(path, []byte(cfgText("30s")), 0o600); err != nil {
			t.Fatal(err)
		}
		child = startChild(t, "run", "--config", path)
		if startedOrClash(t, child, 30*time.Second, "ready", func() bool { return status() == 200 }) {
			break
		}
		if attempt == portClashAttempts {
			t.Fatalf("ports taken %d times in a row", attempt)
		}
	}
	cmd, exited := child.cmd, child.exited
	// Every listener is logged with its address (JSON: stderr is no terminal).
	for _, l := range []string{
		fmt.Sprintf(`"msg":"dns listening","component":"dns","addr":"127.0.0.1:%d"`, dnsPort),
		fmt.Sprintf(`"msg":"admin listening","component":"node","addr":"127.0.0.1:%d"`, adminPort),
	} {
		if !strings.Contains(child.stderr.String(), l) {
			t.Errorf("the log lacks %s", l)
		}
	}
	if got := ttl(); got != 30 {
		t.Fatalf("ttl: got %d, want 30", got)
	}

	if err := os.WriteFile(path, []byte(cfgText("12s")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll(t, 5*time.Second, "reloaded ttl", func() bool { return ttl() == 12 })

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	poll(t, 500*time.Millisecond, "readiness 503", func() bool { return status() == 503 })
	if got := ttl(); got != 12 {
		t.Fatalf("during the drain the node must still answer: got ttl %d", got)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
		if el := time.Since(sent); el < time.Second {
			t.Fatalf("exited after %v, before the 1s drain", el)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("process did not exit after SIGTERM")
	}
}

func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDemoInstructions(t *testing.T) {
	for _, tc := range []struct {
		addrs      demoAddrs
		want, gone []string
	}{{
		addrs: demoAddrs{dns: "127.0.0.1:5353", http: "127.0.0.1:8080", admin: "127.0.0.1:9053", regionPort: "9100"},
		want: []string{
			"export MERIDIAN_TOKEN=s3cret\n",
			"bin/meridian ctl status\n",
			"bin/meridian ctl dial api eu-west 0",
			"dig @127.0.0.1 -p 5353 api.demo.test +subnet=81.2.69.0/24",
			"curl -X POST http://127.0.2.1:9100/fail",
			"curl -s http://127.0.0.1:9053/metrics",
		},
	}, {
		addrs: demoAddrs{dns: "127.0.0.2:15353", http: "127.0.0.2:18080", admin: "127.0.0.2:19053", regionPort: "19100"},
		want: []string{
			"DNS on 127.0.0.2:15353, proxy on 127.0.0.2:18080, admin on 127.0.0.2:19053.",
			"bin/meridian ctl --admin http://127.0.0.2:19053 status\n",
			"dig @127.0.0.2 -p 15353 api.demo.test +subnet=81.2.69.0/24",
			"curl -H 'Host: web.demo.test' http://127.0.0.2:18080/hello",
			"curl -s http://127.0.0.2:19053/metrics",
			"127.0.3.1 (ap-south), port 19100.",
			"curl -X POST http://127.0.2.1:19100/fail",
			"curl -X POST http://127.0.2.1:19100/recover",
		},
		gone: []string{"-p 5353", ":8080", ":9053", ":9100", "port 9100"},
	}} {
		var out bytes.Buffer
		printDemo(&out, "s3cret", "bin/meridian", tc.addrs)
		for _, want := range tc.want {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%v: demo instructions lack %q", tc.addrs, want)
			}
		}
		for _, old := range tc.gone {
			if strings.Contains(out.String(), old) {
				t.Errorf("%v: demo instructions still name %q", tc.addrs, old)
			}
		}
	}
}
