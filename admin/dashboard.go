package admin

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// ui holds the dashboard's assets: plain HTML, CSS and JavaScript, served
// from the binary with no outside request and no build step.
//
//go:embed ui
var ui embed.FS

// dashboardCSP lets the page load its own script and style and talk to
// its own origin, and nothing else: no inline script, no outside host, no
// framing.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// uiTypes are the content types of the dashboard's files.
var uiTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// serveDashboard serves GET / and GET /ui/…; it reports false for every
// other request. The assets need no token: every figure on the page comes
// from the API, which does.
func serveDashboard(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	name := ""
	switch p := r.URL.Path; {
	case p == "/":
		name = "ui/index.html"
	case strings.HasPrefix(p, "/ui/") && path.Clean(p) == p:
		name = strings.TrimPrefix(p, "/")
	default:
		return false
	}
	b, err := fs.ReadFile(ui, name)
	ctype, known := uiTypes[path.Ext(name)]
	if err != nil || !known {
		return false
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(b) //nolint:gosec // G705: a file embedded in the binary, sent with its type, a CSP and nosniff
	}
	return true
}
