package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pebbleModule is the ACME test server run by the end-to-end tests.
const pebbleModule = "github.com/letsencrypt/pebble/v2"

// The pebble binary is built once per test process, into a directory
// TestMain removes.
var pebbleBuild struct {
	once sync.Once
	dir  string // build directory
	bin  string // pebble binary
	mod  string // pebble module directory (its test certificates)
	err  error
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go" // not on PATH: the build fails and says so
}

// buildPebble builds pebble from the module cache, or reports why it could
// not.
func buildPebble() (bin, mod string, err error) {
	b := &pebbleBuild
	b.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, goTool(), "list", "-m", "-f", "{{.Dir}}", pebbleModule).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("locating %s: %v: %s", pebbleModule, err, out)
			return
		}
		b.mod = strings.TrimSpace(string(out))
		if b.dir, b.err = os.MkdirTemp("", "meridian-pebble-"); b.err != nil {
			return
		}
		b.bin = filepath.Join(b.dir, "pebble")
		cmd := exec.CommandContext(ctx, goTool(), "build", "-o", b.bin, pebbleModule+"/cmd/pebble")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s/cmd/pebble: %v: %s", pebbleModule, err, out)
		}
	})
	return b.bin, b.mod, b.err
}

func removePebbleBuild() {
	if pebbleBuild.dir != "" {
		_ = os.RemoveAll(pebbleBuild.dir)
	}
}

// pebble is a running pebble ACME server.
type pebble struct {
	directory string         // ACME directory URL
	caRoot    string         // PEM file of the root that signs pebble's own https certificate
	issuing   *x509.CertPool // pebble's issuing root, for verifying what it issued
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startPebble runs pebble on loopback until the test ends. It validates
// DNS-01 against dnsAddr and HTTP-01 on 127.0.0.1:httpPort. The test is
// skipped when pebble cannot be built.
//
// Pebble's own ports are picked free a moment before it binds them, so
// another test's socket may take one meanwhile: pebble then exits at once
// saying so, and is started again on other ports (at most three times).
func startPebble(t *testing.T, dnsAddr string, httpPort int) *pebble {
	t.Helper()
	bin, mod, err := buildPebble()
	if err != nil {
		t.Skipf("pebble ACME server unavailable: %v", err)
	}
	for try := 1; ; try++ {
		p, err := runPebble(t, bin, mod, dnsAddr, httpPort)
		if err == nil {
			return p
		}
		if try == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("pebble, try %d: %v; again on other ports", try, err)
	}
}

// runPebble is one try of startPebble; it fails with pebble's output when
// pebble exits before serving its directory.
func runPebble(t *testing.T, bin, mod, dnsAddr string, httpPort int) (*pebble, error) {
	t.Helper()
	dir := t.TempDir()
	certs := filepath.Join(mod, "test", "certs")
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	mgmt := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": mgmt,
		"certificate":             filepath.Join(certs, "localhost", "cert.pem"),
		"privateKey":              filepath.Join(certs, "localhost", "key.pem"),
		"httpPort":                httpPort,
		"tlsPort":                 freePort(t),
		"ocspResponderURL":        "",
		"keyAlgorithm":            "ecdsa",
		"retryAfter":              map[string]int{"authz": 0, "order": 0},
	}}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "pebble-config.json")
	writeFile(t, cfgFile, raw)
	caRoot := filepath.Join(dir, "pebble.minica.pem")
	minica, err := os.ReadFile(filepath.Join(certs, "pebble.minica.pem"))
	if err != nil {
		t.Fatalf("reading pebble's test root: %v", err)
	}
	writeFile(t, caRoot, minica)

	var out syncBuffer
	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pebble: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	failed := false // exited before serving: reported by the caller
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if err := <-exited; err == nil && !failed {
			t.Log("pebble exited cleanly before it was stopped")
		}
		if t.Failed() && !failed {
			t.Logf("pebble output:\n%s", out.String())
		}
	})

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(minica)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	p := &pebble{directory: "https://" + listen + "/dir", caRoot: caRoot}

	// Wait for the directory to answer, or pebble to exit.
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(p.directory)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		select {
		case werr := <-exited:
			exited <- werr // for the cleanup
			failed = true
			return nil, fmt.Errorf("pebble exited (%v) before serving its directory:\n%s", werr, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble directory %s not ready: %v", p.directory, err)
		}
	}

	resp, err := client.Get("https://" + mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("fetching pebble's issuing root: %v", err)
	}
	defer resp.Body.Close()
	rootPEM, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("fetching pebble's issuing root: status %s, %v", resp.Status, err)
	}
	p.issuing = x509.NewCertPool()
	if !p.issuing.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble's issuing root is not PEM: %q", rootPEM)
	}
	return p, nil
}
