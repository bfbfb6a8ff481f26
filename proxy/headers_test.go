package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/meridian-edge/meridian/config"
)

// seen is what the echo upstream reports about the request it got.
type seen struct {
	Method string
	URI    string
	Host   string
	Body   string
	Header http.Header
}

func echoUpstream(t *testing.T) string {
	t.Helper()
	return upstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Connection", "X-Up-Secret")
		w.Header().Set("X-Up-Secret", "hidden")
		w.Header().Set("X-Up-Kept", "kept")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Meridian-Region", "spoofed")
		_ = json.NewEncoder(w).Encode(seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Body: string(b), Header: r.Header})
	}).URL
}

func TestForwardingHeaders(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		up := echoUpstream(t)
		svc := proxyService("api", []string{testHost}, "eu")
		trusting := proxyService("edge", []string{"edge.example.com"}, "eu")
		trusting.Proxy.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		based := proxyService("based", []string{"based.example.com"}, "based")
		cfg := &config.Config{
			Regions:  []config.Region{testRegion("eu", up), testRegion("based", up+"/base/")},
			Services: []config.Service{svc, trusting, based},
		}
		h := newHarness(t, cfg, path)

		tests := []struct {
			name   string
			method string
			host   string
			path   string
			body   string
			header map[string]string
			want   map[string]string // request headers the upstream must see ("" = absent)
			uri    string
		}{
			{
				name: "untrusted peer: forwarding headers replaced",
				host: testHost, path: "/a/b?x=1&y=%20z",
				header: map[string]string{
					"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9",
					"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
				},
				want: map[string]string{
					"X-Forwarded-For":   "127.0.0.1",
					"Forwarded":         "for=127.0.0.1;host=api.example.com;proto=http",
					"X-Forwarded-Proto": "http",
					"X-Forwarded-Host":  testHost,
				},
				uri: "/a/b?x=1&y=%20z",
			},
			{
				name: "trusted peer: chain appended, original proto and host kept",
				host: "edge.example.com", path: "/",
				header: map[string]string{
					"X-Forwarded-For": "203.0.113.9, 198.51.100.1", "Forwarded": "for=203.0.113.9",
					"X-Forwarded-Proto": "https", "X-Forwarded-Host": "www.example.org",
				},
				want: map[string]string{
					"X-Forwarded-For":   "203.0.113.9, 198.51.100.1, 127.0.0.1",
					"Forwarded":         "for=203.0.113.9, for=127.0.0.1;host=edge.example.com;proto=http",
					"X-Forwarded-Proto": "https",
					"X-Forwarded-Host":  "www.example.org",
				},
				uri: "/",
			},
			{
				name: "trusted peer without prior headers",
				host: "EDGE.example.com:8080", path: "/p",
				want: map[string]string{
					"X-Forwarded-For":   "127.0.0.1",
					"Forwarded":         `for=127.0.0.1;host="EDGE.example.com:8080";proto=http`,
					"X-Forwarded-Proto": "http",
					"X-Forwarded-Host":  "EDGE.example.com:8080",
				},
				uri: "/p",
			},
			{
				name: "hop-by-hop headers removed, Connection-listed too",
				host: testHost, path: "/",
				header: map[string]string{
					"Connection": "X-Secret, keep-alive", "X-Secret": "1", "Keep-Alive": "timeout=5",
					"Proxy-Authorization": "Basic Zm9vOmJhcg==", "X-Kept": "yes", "Te": "gzip",
				},
				want: map[string]string{
					"X-Secret": "", "Keep-Alive": "", "Proxy-Authorization": "", "Connection": "", "Te": "",
					"X-Kept": "yes",
				},
				uri: "/",
			},
			{
				name:   "method and body preserved",
				method: http.MethodPatch, host: testHost, path: "/items/7?dry=1", body: "payload",
				uri: "/items/7?dry=1",
			},
			{
				name: "endpoint base path joined",
				host: "based.example.com", path: "/v1/x?q=2",
				uri: "/base/v1/x?q=2",
			},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				method := tc.method
				if method == "" {
					method = http.MethodGet
				}
				var body io.Reader
				if tc.body != "" {
					body = strings.NewReader(tc.body)
				}
				req := h.request(method, tc.host, tc.path, body)
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				resp, raw := h.do(req)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("got status %d, want 200; body %q", resp.StatusCode, raw)
				}
				var got seen
				if err := json.Unmarshal([]byte(raw), &got); err != nil {
					t.Fatalf("decoding echo %q: %v", raw, err)
				}
				if got.Method != method || got.URI != tc.uri || got.Body != tc.body {
					t.Errorf("upstream got %s %s body %q, want %s %s body %q", got.Method, got.URI, got.Body, method, tc.uri, tc.body)
				}
				if got.Host != tc.host {
					t.Errorf("upstream got Host %q, want the client's %q", got.Host, tc.host)
				}
				for k, want := range tc.want {
					if v := strings.Join(got.Header.Values(k), ", "); v != want {
						t.Errorf("upstream got %s %q, want %q", k, v, want)
					}
				}
				// Response side: hop-by-hop gone, region stamped.
				if v := resp.Header.Get("X-Up-Secret"); v != "" {
					t.Errorf("client got Connection-listed X-Up-Secret %q", v)
				}
				if v := resp.Header.Get("Keep-Alive"); v != "" {
					t.Errorf("client got hop-by-hop Keep-Alive %q", v)
				}
				if v := resp.Header.Get("X-Up-Kept"); v != "kept" {
					t.Errorf("client got X-Up-Kept %q, want kept", v)
				}
				wantRegion := "eu"
				if tc.host == "based.example.com" {
					wantRegion = "based"
				}
				if v := resp.Header.Values("X-Meridian-Region"); len(v) != 1 || v[0] != wantRegion {
					t.Errorf("client got X-Meridian-Region %q, want [%s]", v, wantRegion)
				}
			})
		}
		h.checkFast(path)
	})
}

func TestUnknownHost(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		up := &named{name: "up"}
		cfg := &config.Config{
			Regions:  []config.Region{testRegion("eu", upstream(t, up.ServeHTTP).URL)},
			Services: []config.Service{proxyService("api", []string{testHost}, "eu")},
		}
		h := newHarness(t, cfg, path)
		for _, host := range []string{"other.example.com", "example.com", "127.0.0.1", "[::1]:80"} {
			resp, body := h.get(host, "/")
			if resp.StatusCode != http.StatusMisdirectedRequest {
				t.Errorf("host %s: got status %d, want 421", host, resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("host %s: got Content-Type %q, want text/plain", host, ct)
			}
			if !strings.Contains(body, "no service for host") {
				t.Errorf("host %s: got body %q, want it to name the problem", host, body)
			}
		}
		for _, host := range []string{testHost, "API.Example.COM", testHost + ":8080", testHost + "."} {
			if resp, body := h.get(host, "/"); resp.StatusCode != http.StatusOK || body != "up" {
				t.Errorf("host %s: got %d %q, want 200 up", host, resp.StatusCode, body)
			}
		}
		if up.count() != 4 {
			t.Errorf("upstream got %d requests, want 4 (misdirected ones never forwarded)", up.count())
		}
		h.checkFast(path)
	})
}

func TestDefaultService(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		api, fallback := &named{name: "api"}, &named{name: "default"}
		def := proxyService("default", nil, "b")
		def.Proxy.Default = true
		cfg := &config.Config{
			Regions: []config.Region{
				testRegion("a", upstream(t, api.ServeHTTP).URL),
				testRegion("b", upstream(t, fallback.ServeHTTP).URL),
			},
			Services: []config.Service{proxyService("api", []string{testHost}, "a"), def},
		}
		h := newHarness(t, cfg, path)
		for host, want := range map[string]string{testHost: "api", "127.0.0.1:8080": "default", "anything.example": "default"} {
			if resp, body := h.get(host, "/"); resp.StatusCode != http.StatusOK || body != want {
				t.Errorf("host %s: got %d %q, want 200 %q", host, resp.StatusCode, body, want)
			}
		}
	})
}
