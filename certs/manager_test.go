package certs

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meridian-edge/meridian/config"
)

func TestNewACMEErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "root.txt")
	writeFile(t, notPEM, []byte("no certificate here\n"))
	missing := filepath.Join(dir, "missing-root.pem")
	txt := newFakeTXT()
	tests := []struct {
		name string
		acme config.ACME
		opts Options
		want string
	}{
		{"dns-01 without publisher", config.ACME{Challenge: "dns-01"}, Options{},
			"acme: the dns-01 challenge needs a TXT publisher (meridian's DNS server)"},
		{"default challenge is dns-01", config.ACME{}, Options{},
			"acme: the dns-01 challenge needs a TXT publisher (meridian's DNS server)"},
		{"unknown challenge", config.ACME{Challenge: "tls-alpn-01"}, Options{TXT: txt},
			`acme: challenge "tls-alpn-01": want dns-01 or http-01`},
		{"wildcard over http-01", config.ACME{Challenge: "http-01"}, Options{Names: []string{"api.example.com", "*.edge.example.com"}},
			`acme: name "*.edge.example.com": a wildcard certificate needs the dns-01 challenge`},
		{"plain http CA", config.ACME{CA: "http://ca.example.com/dir"}, Options{TXT: txt},
			`acme: ca "http://ca.example.com/dir": want an https directory URL`},
		{"CA without host", config.ACME{CA: "https:///dir"}, Options{TXT: txt},
			`acme: ca "https:///dir": want an https directory URL`},
		{"missing ca_root", config.ACME{CARoot: missing}, Options{TXT: txt},
			"acme: reading ca_root: open " + missing + ": no such file or directory"},
		{"ca_root without certificate", config.ACME{CARoot: notPEM}, Options{TXT: txt},
			`acme: ca_root "` + notPEM + `": no PEM certificate in it`},
		{"bad name", config.ACME{}, Options{TXT: txt, Names: []string{"api example.com"}},
			`acme: name "api example.com": not a DNS name`},
		{"empty name", config.ACME{}, Options{TXT: txt, Names: []string{""}},
			`acme: name "": empty`},
		{"inner wildcard", config.ACME{}, Options{TXT: txt, Names: []string{"api.*.example.com"}},
			`acme: name "api.*.example.com": not a DNS name`},
		{"http port out of range", config.ACME{Challenge: "http-01"}, Options{HTTPPort: 70000},
			"acme: http port 70000: out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.acme
			a.Storage = t.TempDir()
			_, err := New(config.TLS{ACME: &a}, tc.opts)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestStartStopLifecycle(t *testing.T) {
	t.Parallel()
	t.Run("without acme", func(t *testing.T) {
		m, err := New(config.TLS{}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		m.Stop() // before Start
		if err := m.Start(context.Background()); err != nil {
			t.Errorf("Start without acme: %v", err)
		}
		m.Stop()
	})
	t.Run("with acme", func(t *testing.T) {
		m, err := New(config.TLS{ACME: &config.ACME{Storage: t.TempDir()}}, Options{Logger: testLogger(t), TXT: newFakeTXT()})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(context.Background()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if err := m.Start(context.Background()); err == nil || err.Error() != "starting certificate management: already started" {
			t.Errorf("second Start: %v", err)
		}
		m.Stop()
		m.Stop()
		if err := m.Start(context.Background()); err == nil || err.Error() != "starting certificate management: manager is stopped" {
			t.Errorf("Start after Stop: %v", err)
		}
	})
	t.Run("stop without start", func(t *testing.T) {
		m, err := New(config.TLS{ACME: &config.ACME{Storage: t.TempDir()}}, Options{TXT: newFakeTXT()})
		if err != nil {
			t.Fatal(err)
		}
		m.Stop()
	})
}

func TestManageBeforeStartAndWithoutACME(t *testing.T) {
	t.Parallel()
	m, err := New(config.TLS{ACME: &config.ACME{Storage: t.TempDir()}}, Options{TXT: newFakeTXT(), Names: []string{"a.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Manage([]string{"b.example.com", "A.example.com", "*.c.example.com"}); err != nil {
		t.Fatalf("Manage: %v", err)
	}
	if got, want := strings.Join(m.names, " "), "a.example.com b.example.com *.c.example.com"; got != want {
		t.Errorf("names %q, want %q", got, want)
	}
	if err := m.Manage([]string{"bad name"}); err == nil || err.Error() != `acme: name "bad name": not a DNS name` {
		t.Errorf("Manage with a bad name: %v", err)
	}
	m.Stop()

	plain, err := New(config.TLS{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Manage([]string{"bad name"}); err != nil {
		t.Errorf("Manage without acme: %v", err)
	}
}

func TestHTTPChallengeHandlerPassesThrough(t *testing.T) {
	t.Parallel()
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "next")
	})
	dns01, err := New(config.TLS{ACME: &config.ACME{Storage: t.TempDir()}}, Options{Logger: testLogger(t), TXT: newFakeTXT()})
	if err != nil {
		t.Fatal(err)
	}
	if err := dns01.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer dns01.Stop()
	plain, err := New(config.TLS{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		m    *Manager
		path string
	}{
		{"no acme, challenge path", plain, "/.well-known/acme-challenge/abc"},
		{"dns-01, challenge path", dns01, "/.well-known/acme-challenge/abc"},
		{"dns-01, other path", dns01, "/index.html"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.m.HTTPChallengeHandler(next))
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusTeapot || string(body) != "next" {
				t.Errorf("got %d %q, want %d %q from next", resp.StatusCode, body, http.StatusTeapot, "next")
			}
		})
	}
}
