package main

import (
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/node"
)

//go:embed demo.yaml
var demoConfig string

// demoRegion is a simulated region: an HTTP server that answers with its
// name and whose health can be switched off and on. It also simulates the
// region's database replica: a lag endpoint (whose lag /lag?seconds=N
// sets) and a promote hook that says when it is called.
type demoRegion struct {
	name, addr string
	down       atomic.Bool
	lagMillis  atomic.Int64
	out        io.Writer // where the promote hook says it was called
	srv        *http.Server
}

func (r *demoRegion) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch req.URL.Path {
	case "/health/ready":
		if r.down.Load() {
			http.Error(w, r.name+" is down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	case "/fail":
		r.down.Store(true)
		fmt.Fprintf(w, "%s now fails its health checks\n", r.name)
	case "/recover":
		r.down.Store(false)
		fmt.Fprintf(w, "%s passes its health checks again\n", r.name)
	case "/replication":
		if r.down.Load() {
			http.Error(w, r.name+" is down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"lag_seconds\": %g}\n", float64(r.lagMillis.Load())/1000)
	case "/lag":
		s, err := strconv.ParseFloat(req.URL.Query().Get("seconds"), 64)
		if err != nil || s < 0 || s > 1e6 {
			http.Error(w, "want /lag?seconds=N", http.StatusBadRequest)
			return
		}
		r.lagMillis.Store(int64(s * 1000))
		fmt.Fprintf(w, "%s replica lag now %gs\n", r.name, s)
	case "/promote":
		if req.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		fmt.Fprintf(r.out, "demo: promote hook of %s called: its database is now the writer\n", r.name)
		fmt.Fprintf(w, "%s promoted\n", r.name)
	default:
		if r.down.Load() {
			http.Error(w, r.name+" is down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "hello from %s\n", r.name)
	}
}

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	var addrs demoAddrs
	fs.StringVar(&addrs.dns, "dns", "127.0.0.1:5353", "DNS listen address (UDP and TCP)")
	fs.StringVar(&addrs.http, "http", "127.0.0.1:8080", "proxy listen address")
	fs.StringVar(&addrs.admin, "admin", config.DefaultAdminListen, "admin API listen address")
	regionPort := fs.Int("region-port", 9100, "port of the simulated regions on 127.0.1.1, 127.0.2.1 and 127.0.3.1")
	fleet := fs.Bool("fleet", false, "run three nodes sharing a local etcd (needs an etcd binary on PATH)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meridian demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *regionPort < 1 || *regionPort > 65535 {
		fmt.Fprintf(stderr, "meridian demo: --region-port %d: want a port from 1 to 65535\n", *regionPort)
		return 2
	}
	addrs.regionPort = strconv.Itoa(*regionPort)
	for _, a := range []struct{ flag, addr string }{{"dns", addrs.dns}, {"http", addrs.http}, {"admin", addrs.admin}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			fmt.Fprintf(stderr, "meridian demo: --%s %q: want host:port\n", a.flag, a.addr)
			return 2
		}
	}
	log, err := newLogger(stderr, *level, "text")
	if err != nil {
		fmt.Fprintln(stderr, "meridian demo:", err)
		return 2
	}
	dir, err := os.MkdirTemp("", "meridian-demo-")
	if err != nil {
		fmt.Fprintln(stderr, "meridian demo:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	regions := []*demoRegion{
		{name: "us-east", addr: net.JoinHostPort("127.0.1.1", addrs.regionPort)},
		{name: "eu-west", addr: net.JoinHostPort("127.0.2.1", addrs.regionPort)},
		{name: "ap-south", addr: net.JoinHostPort("127.0.3.1", addrs.regionPort)},
	}
	for i, r := range regions {
		r.out = stdout
		r.lagMillis.Store(int64(400 * (i + 1))) // 0.4s, 0.8s, 1.2s
		ln, err := net.Listen("tcp", r.addr)
		if err != nil {
			fmt.Fprintf(stderr, "meridian demo: simulated region %s: %v (choose another port with --region-port)\n", r.name, err)
			return 1
		}
		r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = r.srv.Serve(ln) }()
		defer r.srv.Close()
	}

	token := randomToken()
	if err := os.Setenv("MERIDIAN_DEMO_TOKEN", token); err != nil {
		fmt.Fprintln(stderr, "meridian demo:", err)
		return 1
	}
	if *fleet {
		return demoFleet(dir, token, addrs, log, stdout, stderr)
	}
	path := filepath.Join(dir, "demo.yaml")
	text := demoYAML(filepath.Join(dir, "state.json"), addrs)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		fmt.Fprintln(stderr, "meridian demo:", err)
		return 1
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, "meridian demo:", err)
		return 1
	}
	n, err := node.New(cfg, node.Options{Logger: log, ConfigPath: path, Admin: adminHandler(log)})
	if err != nil {
		fmt.Fprintln(stderr, "meridian demo:", err)
		return 1
	}
	go func() {
		// Print once the node answers.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && !n.Ready() {
			time.Sleep(100 * time.Millisecond)
		}
		printDemo(stdout, token, selfCommand(), addrs)
	}()
	if code := serve(n, log, nil); code != 0 {
		fmt.Fprintln(stderr, "meridian demo: if an address is taken (port 5353 often is, by mDNS), choose others with --dns, --http and --admin")
		return code
	}
	return 0
}

// demoAddrs are the demo node's listen addresses.
type demoAddrs struct{ dns, http, admin, regionPort string }

// demoYAML is the demo config with its state file and listen addresses.
func demoYAML(statePath string, a demoAddrs) string {
	return strings.NewReplacer("STATE_PATH", statePath, "DNS_ADDR", a.dns, "HTTP_ADDR", a.http, "ADMIN_ADDR", a.admin,
		"REGION_PORT", a.regionPort).Replace(demoConfig)
}

func randomToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("no randomness"))
	}
	return hex.EncodeToString(b)
}

// selfCommand is how the user can run this binary again: the path they
// ran, or "go run ./cmd/meridian" when it is a temporary go run build.
func selfCommand() string {
	exe := os.Args[0]
	if strings.Contains(exe, "go-build") {
		return "go run ./cmd/meridian"
	}
	return exe
}

func printDemo(w io.Writer, token, self string, a demoAddrs) {
	ctl := self + " ctl"
	if admin := "http://" + a.admin; admin != defaultAdminURL {
		ctl += " --admin " + admin
	}
	dnsHost, dnsPort, _ := net.SplitHostPort(a.dns) // checked by cmdDemo
	text := `meridian demo is running: DNS on {{dns}}, proxy on {{http}}, admin on {{admin}}.
Three simulated regions answer on 127.0.1.1 (us-east), 127.0.2.1 (eu-west) and 127.0.3.1 (ap-south), port 9100.

Steered DNS (service api, latency policy; the client subnet locates the client):
  dig @127.0.0.1 -p 5353 api.demo.test +subnet=81.2.69.0/24      # London    -> eu-west  127.0.2.1
  dig @127.0.0.1 -p 5353 api.demo.test +subnet=175.16.199.0/24   # Changchun -> ap-south 127.0.3.1
  dig @127.0.0.1 -p 5353 api.demo.test +subnet=216.160.83.0/24   # Seattle   -> us-east  127.0.1.1
  dig @127.0.0.1 -p 5353 demo.test SOA +norecurse

Failover (eu-west fails its health checks; London moves within about 1.5s):
  curl -X POST http://127.0.2.1:9100/fail
  dig @127.0.0.1 -p 5353 api.demo.test +subnet=81.2.69.0/24 +short
  curl -X POST http://127.0.2.1:9100/recover

The proxy (service web) steers too, and fails over by itself:
  curl -H 'Host: web.demo.test' http://127.0.0.1:8080/hello     # from here (no location): eu-west
  curl -X POST http://127.0.2.1:9100/fail; curl -H 'Host: web.demo.test' http://127.0.0.1:8080/hello   # answered by the next region
  curl -X POST http://127.0.2.1:9100/recover

The failover runbook (service orders: writes go to us-east only, reads follow the policy):
  export MERIDIAN_TOKEN={{token}}
  curl -X POST -H 'Host: orders.demo.test' http://127.0.0.1:8080/order   # written in us-east
  {{ctl}} status                                               # each region's replica lag
  curl -X POST http://127.0.1.1:9100/fail                                # the primary dies (down in about 1s)
  curl -i -X POST -H 'Host: orders.demo.test' http://127.0.0.1:8080/order  # 503, Retry-After
  {{ctl}} failover orders --to eu-west --dry-run
  {{ctl}} failover orders --to eu-west --reason "us-east lost"  # each step, then RTO and RPO
  curl -X POST -H 'Host: orders.demo.test' http://127.0.0.1:8080/order   # written in eu-west
  {{ctl}} failovers orders
  {{ctl}} drill web eu-west --duration 5s                     # measured RTO and errors

Traffic dials and overrides through the admin API:
  export MERIDIAN_TOKEN={{token}}
  {{ctl}} status
  {{ctl}} dial api eu-west 0 --reason "drain eu-west"      # London spills to the next region
  dig @127.0.0.1 -p 5353 api.demo.test +subnet=81.2.69.0/24 +short
  {{ctl}} explain api 81.2.69.142
  {{ctl}} dial api eu-west 100
  {{ctl}} override us-east down --reason "maintenance"
  {{ctl}} audit
  curl -s http://127.0.0.1:9053/metrics | grep '^meridian_'

Stop with Ctrl-C.
`
	fmt.Fprint(w, strings.NewReplacer(
		"{{token}}", token, "{{ctl}}", ctl,
		"{{dns}}", a.dns, "{{http}}", a.http, "{{admin}}", a.admin,
		"@127.0.0.1 -p 5353", "@"+dnsHost+" -p "+dnsPort,
		"http://127.0.0.1:8080/", "http://"+a.http+"/",
		"http://127.0.0.1:9053/", "http://"+a.admin+"/",
		"127.0.2.1:9100", "127.0.2.1:"+a.regionPort,
		"127.0.1.1:9100", "127.0.1.1:"+a.regionPort,
		"port 9100.", "port "+a.regionPort+".",
	).Replace(text))
}
