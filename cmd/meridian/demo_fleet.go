package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/node"
)

// The fleet demo's etcd listens on these loopback ports (not etcd's
// defaults, so that it never meets a real etcd).
const (
	demoEtcdClientPort = 12379
	demoEtcdPeerPort   = 12380
	demoFleetSize      = 3
)

// shiftPort returns addr with its port raised by by.
func shiftPort(addr string, by int) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(host, strconv.Itoa(p+by))
}

// demoFleetAddrs are node i's (0-based) addresses: node 1 has the flags'
// addresses, the others the next ports.
func demoFleetAddrs(a demoAddrs, i int) demoAddrs {
	return demoAddrs{dns: shiftPort(a.dns, i), http: shiftPort(a.http, i), admin: shiftPort(a.admin, i), regionPort: a.regionPort}
}

// demoFleetYAML is node i's config: the demo config with its own name,
// state backend etcd and health consensus.
func demoFleetYAML(dir string, a demoAddrs, i int) string {
	state := filepath.Join(dir, fmt.Sprintf("state-%d.json", i+1))
	text := demoYAML(state, demoFleetAddrs(a, i))
	return strings.NewReplacer(
		"name: demo-edge\n", fmt.Sprintf("name: demo-edge-%d\n", i+1),
		"state:\n  path: "+state+"\n", fmt.Sprintf(`state:
  backend: etcd
  path: %s                      # this node's copy of the fleet state, for a start while etcd is away
  etcd: {endpoints: ["http://127.0.0.1:%d"], prefix: /meridian-demo/}

fleet: {node_ttl: 5s, health: quorum}
`, state, demoEtcdClientPort),
	).Replace(text)
}

// startDemoEtcd runs the etcd binary on PATH with its data in dir.
func startDemoEtcd(dir string, stderr io.Writer) (*exec.Cmd, error) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, fmt.Errorf("--fleet needs an etcd binary on PATH (Debian: apt install etcd-server): %w", err)
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", demoEtcdClientPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", demoEtcdPeerPort)
	logFile, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(bin, "--name", "demo", "--data-dir", filepath.Join(dir, "etcd"), //nolint:gosec // the etcd binary on PATH, fixed arguments
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "demo="+peer, "--log-level", "warn", "--logger", "zap")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(client + "/health") //nolint:gosec,noctx // a fixed loopback URL
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Fprintf(stderr, "etcd %s running on %s (log: %s)\n", bin, client, logFile.Name())
				return cmd, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, fmt.Errorf("etcd did not answer on %s within 15s (is port %d taken? see %s)", client, demoEtcdClientPort, logFile.Name())
}

// demoFleet runs three nodes sharing a local etcd until SIGINT/SIGTERM.
func demoFleet(dir, token string, addrs demoAddrs, log *slog.Logger, stdout, stderr io.Writer) int {
	etcd, err := startDemoEtcd(dir, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "meridian demo:", err)
		return 1
	}
	defer func() {
		_ = etcd.Process.Kill()
		_ = etcd.Wait()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)

	var nodes []*node.Node
	defer func() {
		for _, n := range nodes {
			_ = n.Close()
		}
	}()
	for i := range demoFleetSize {
		path := filepath.Join(dir, fmt.Sprintf("demo-%d.yaml", i+1))
		if err := os.WriteFile(path, []byte(demoFleetYAML(dir, addrs, i)), 0o600); err != nil {
			fmt.Fprintln(stderr, "meridian demo:", err)
			return 1
		}
		cfg, err := config.Load(path)
		if err != nil {
			fmt.Fprintln(stderr, "meridian demo:", err)
			return 1
		}
		nlog := log.With("node", cfg.Node.Name)
		n, err := node.New(cfg, node.Options{Logger: nlog, ConfigPath: path, Admin: adminHandler(nlog)})
		if err != nil {
			fmt.Fprintln(stderr, "meridian demo:", err)
			return 1
		}
		if err := n.Start(ctx); err != nil {
			fmt.Fprintf(stderr, "meridian demo: starting %s: %v (if an address is taken, choose others with --dns, --http and --admin; the nodes use three ports from each)\n", cfg.Node.Name, err)
			return 1
		}
		nodes = append(nodes, n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range nodes {
		for time.Now().Before(deadline) && !n.Ready() {
			time.Sleep(100 * time.Millisecond)
		}
	}
	printDemoFleet(stdout, token, selfCommand(), addrs)
	<-sig
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { _ = n.Shutdown(sctx) })
	}
	wg.Wait()
	nodes = nil
	return 0
}

func printDemoFleet(w io.Writer, token, self string, a demoAddrs) {
	var b strings.Builder
	fmt.Fprintf(&b, "meridian demo --fleet is running: %d nodes sharing etcd on 127.0.0.1:%d.\n", demoFleetSize, demoEtcdClientPort)
	for i := range demoFleetSize {
		na := demoFleetAddrs(a, i)
		fmt.Fprintf(&b, "  demo-edge-%d: DNS %s, proxy %s, admin %s\n", i+1, na.dns, na.http, na.admin)
	}
	ctl := func(i int) string { return self + " ctl --admin http://" + demoFleetAddrs(a, i).admin }
	dig := func(i int) string {
		host, port, _ := net.SplitHostPort(demoFleetAddrs(a, i).dns)
		return "dig @" + host + " -p " + port + " api.demo.test +subnet=81.2.69.0/24 +short"
	}
	fmt.Fprintf(&b, `
The fleet's live nodes, from any node:
  export MERIDIAN_TOKEN=%s
  %s nodes

A dial set on demo-edge-1 is answered by the others (London leaves eu-west 127.0.2.1):
  %s
  %s dial api eu-west 0 --reason "drain eu-west"
  %s
  %s
  %s audit
  %s dial api eu-west 100

Health consensus (fleet.health: quorum): one region failing for every node is down for the fleet:
  curl -X POST http://127.0.2.1:%s/fail
  %s status
  curl -X POST http://127.0.2.1:%s/recover

Stop with Ctrl-C.
`, token, ctl(1), dig(2), ctl(0), dig(1), dig(2), ctl(2), ctl(0), a.regionPort, ctl(1), a.regionPort)
	fmt.Fprint(w, b.String())
}
