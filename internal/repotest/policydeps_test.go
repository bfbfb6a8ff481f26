package repotest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// policyDir is the steering core, relative to the module root.
const policyDir = "policy"

// forbiddenImport reports why the policy package may not import path, or ""
// when it may. policy does no I/O, reads no environment and keeps no metrics:
// it is handed a snapshot and returns a decision.
func forbiddenImport(path string) string {
	switch {
	case path == "net/netip":
		return "" // addresses as values are fine
	case path == "net" || strings.HasPrefix(path, "net/"):
		return "network I/O (use net/netip for addresses)"
	case path == "os" || strings.HasPrefix(path, "os/"):
		return "reads the environment or files"
	case path == "syscall" || path == "io/ioutil":
		return "does I/O"
	case strings.HasPrefix(path, "github.com/prometheus/"):
		return "metrics belong to the callers"
	case path == modulePath+"/"+policyDir || strings.HasPrefix(path, modulePath+"/"+policyDir+"/"):
		return "" // policy's own subpackages are checked by the same rules
	case path == modulePath || strings.HasPrefix(path, modulePath+"/"):
		return "policy imports no other meridian package"
	}
	return ""
}

// forbiddenTimeCalls are the functions of package time that read the clock
// or start timers; policy is handed the time it needs.
var forbiddenTimeCalls = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"AfterFunc": true, "Tick": true, "NewTicker": true, "NewTimer": true,
}

// TestPolicyIsPure keeps the steering core free of I/O, clocks, goroutines,
// metrics and other meridian packages, by reading the imports and calls of
// every non-test file under policy/.
func TestPolicyIsPure(t *testing.T) {
	for _, p := range policyProblems(t, moduleRoot(t)) {
		t.Error(p)
	}
}

// policyProblems lists the impurities of the policy package of the module
// rooted at root, file by file.
func policyProblems(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	for dir, paths := range goFilesByDir(t, root) {
		if dir != policyDir && !strings.HasPrefix(dir, policyDir+string(filepath.Separator)) {
			continue
		}
		for _, p := range paths {
			if !strings.HasSuffix(p, "_test.go") {
				files = append(files, p)
			}
		}
	}
	if len(files) == 0 {
		t.Fatalf("found no non-test Go file under %s/", filepath.Join(root, policyDir))
	}
	sort.Strings(files)
	var problems []string
	for _, path := range files {
		rel, _ := filepath.Rel(root, path)
		for _, problem := range impurities(t, path) {
			problems = append(problems, rel+": "+problem)
		}
	}
	return problems
}

// impurities parses one file and lists its forbidden imports, clock reads
// and go statements.
func impurities(t *testing.T, path string) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	at := func(pos token.Pos) string {
		p := fset.Position(pos)
		return "line " + strconv.Itoa(p.Line)
	}
	var problems []string
	timeName := "" // local name of package time, if imported
	for _, imp := range f.Imports {
		p, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			t.Fatalf("parsing import in %s: %v", path, err)
		}
		if why := forbiddenImport(p); why != "" {
			problems = append(problems, "imports "+strconv.Quote(p)+": "+why)
		}
		if p == "time" {
			timeName = "time"
			if imp.Name != nil {
				timeName = imp.Name.Name
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			problems = append(problems, at(n.Pos())+": starts a goroutine")
		case *ast.SelectorExpr:
			if id, ok := n.X.(*ast.Ident); ok && timeName != "" && id.Name == timeName && forbiddenTimeCalls[n.Sel.Name] {
				problems = append(problems, at(n.Pos())+": uses time."+n.Sel.Name+"; take the time as an argument")
			}
		}
		return true
	})
	return problems
}

func TestForbiddenImport(t *testing.T) {
	tests := []struct {
		path    string
		allowed bool
	}{
		{"time", true},
		{"sort", true},
		{"log/slog", true},
		{"net/netip", true},
		{modulePath + "/policy/internal/rank", true},
		{"net", false},
		{"net/http", false},
		{"net/http/httptest", false},
		{"os", false},
		{"os/exec", false},
		{"syscall", false},
		{"github.com/prometheus/client_golang/prometheus", false},
		{modulePath + "/health", false},
		{modulePath + "/geo", false},
		{modulePath + "/policyx", false},
		{modulePath, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			why := forbiddenImport(tt.path)
			if got := why == ""; got != tt.allowed {
				t.Errorf("forbiddenImport(%q) = %q, want allowed=%v", tt.path, why, tt.allowed)
			}
		})
	}
}

func TestPolicyProblems(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name: "pure package",
			files: map[string]string{
				"policy/doc.go": "// Package policy decides.\npackage policy\n",
				"policy/p.go": `package policy

import (
	"net/netip"
	"sort"
	"time"
)

func decide(now time.Time, a netip.Addr, d time.Duration) { sort.Ints(nil); _ = now.Add(d) }
`,
				"policy/p_test.go": `package policy

import (
	"net/http"
	"os"
	"time"
)

func helper() { go func() {}(); _ = time.Now(); _ = os.Args; _ = http.MethodGet }
`,
			},
			want: nil,
		},
		{
			name: "impure package",
			files: map[string]string{
				"policy/p.go": `package policy

import (
	"net"
	"os"
	clock "time"

	"github.com/meridian-edge/meridian/health"
	"github.com/meridian-edge/meridian/policy/rank"
	"github.com/prometheus/client_golang/prometheus"
)

func decide() {
	go func() {}()
	_ = clock.Now()
	_ = clock.Second
}
`,
				"policy/rank/r.go": `package rank

import "net/http"
`,
			},
			want: []string{
				`policy/p.go: imports "net": network I/O (use net/netip for addresses)`,
				`policy/p.go: imports "os": reads the environment or files`,
				`policy/p.go: imports "github.com/meridian-edge/meridian/health": policy imports no other meridian package`,
				`policy/p.go: imports "github.com/prometheus/client_golang/prometheus": metrics belong to the callers`,
				"policy/p.go: line 14: starts a goroutine",
				"policy/p.go: line 15: uses time.Now; take the time as an argument",
				`policy/rank/r.go: imports "net/http": network I/O (use net/netip for addresses)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			got := policyProblems(t, root)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("policyProblems() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
