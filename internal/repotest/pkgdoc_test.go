package repotest

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// TestPackageDocs fails for every package directory of the module whose
// package clause carries no doc comment in a non-test file, and for every
// package documented in more than one file (go doc would join them).
func TestPackageDocs(t *testing.T) {
	root := moduleRoot(t)
	if len(goFilesByDir(t, root)) == 0 {
		t.Fatalf("found no Go package under %s", root)
	}
	for _, p := range packageDocProblems(t, root) {
		t.Error(p)
	}
}

// packageDocProblems lists, in directory order, what is wrong with the
// package doc comments of the module rooted at root.
func packageDocProblems(t *testing.T, root string) []string {
	t.Helper()
	var problems []string
	byDir := goFilesByDir(t, root)
	dirs := make([]string, 0, len(byDir))
	for dir := range byDir {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)

	for _, dir := range dirs {
		var documented, testDocumented []string
		hasNonTest, built := false, 0
		for _, path := range byDir[dir] {
			if ignoredByBuild(t, path) {
				continue
			}
			built++
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatalf("parsing %s: %v", path, err)
			}
			isTest := strings.HasSuffix(path, "_test.go")
			if !isTest {
				hasNonTest = true
			}
			if f.Doc == nil || strings.TrimSpace(f.Doc.Text()) == "" {
				continue
			}
			rel, _ := filepath.Rel(root, path)
			if txt := f.Doc.Text(); strings.Contains(txt, "Copyright") || strings.Contains(txt, "SPDX-License-Identifier") {
				problems = append(problems, fmt.Sprintf("%s: licence header attached to the package clause as its doc comment; leave a blank line after it", rel))
			}
			if isTest {
				testDocumented = append(testDocumented, rel)
			} else {
				documented = append(documented, rel)
			}
		}
		switch {
		case hasNonTest && len(documented) == 0:
			problems = append(problems, fmt.Sprintf("%s: package has no doc comment in a non-test file (add doc.go with \"// Package x ...\" or \"// Command x ...\")", dir))
		case !hasNonTest && len(testDocumented) == 0 && built > 0:
			problems = append(problems, fmt.Sprintf("%s: test-only package has no doc comment", dir))
		case len(documented) > 1:
			problems = append(problems, fmt.Sprintf("%s: package doc comment in several files %q; keep one", dir, documented))
		}
	}
	return problems
}

// writeTree creates files (slash-separated path → contents) under a new
// temporary directory and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestPackageDocProblems(t *testing.T) {
	const mod = "go.mod"
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name: "documented packages and skipped dirs",
			files: map[string]string{
				mod:                 "module example.com/m\n",
				"a/doc.go":          "// Package a does a.\npackage a\n",
				"a/a.go":            "package a\n",
				"a/a_test.go":       "package a\n",
				"cmd/m/main.go":     "// Command m runs m.\npackage main\n",
				"a/testdata/x/x.go": "package x\n",
				".hidden/h.go":      "package h\n",
				"bin/b.go":          "package b\n",
				"_tools/t.go":       "package t\n",
				"nested/go.mod":     "module example.com/n\n",
				"nested/n.go":       "package n\n",
				"gen/doc.go":        "// Package gen generates.\npackage gen\n",
				"gen/gen.go":        "//go:build ignore\n\n// Program gen writes tables.\npackage main\n",
				"tools/only.go":     "//go:build ignore\n\npackage main\n",
				"e2e/e2e_test.go":   "// Package e2e tests the binary.\npackage e2e\n",
			},
			want: nil,
		},
		{
			name: "missing, test-only, duplicated and licence docs",
			files: map[string]string{
				mod:                   "module example.com/m\n",
				"nodoc/x.go":          "package nodoc\n",
				"testdoc/x.go":        "package testdoc\n",
				"testdoc/x_test.go":   "// Package testdoc is documented only in a test.\npackage testdoc\n",
				"twice/a.go":          "// Package twice is a.\npackage twice\n",
				"twice/b.go":          "// Package twice is b.\npackage twice\n",
				"lic/l.go":            "// Copyright 2026 Someone.\npackage lic\n",
				"onlytests/x_test.go": "package onlytests\n",
				"ignored/x.go":        "//go:build ignore\n\n// Program x.\npackage main\n",
				"ignored/y.go":        "package ignored\n",
			},
			want: []string{
				"ignored: package has no doc comment in a non-test file (add doc.go with \"// Package x ...\" or \"// Command x ...\")",
				"lic/l.go: licence header attached to the package clause as its doc comment; leave a blank line after it",
				"nodoc: package has no doc comment in a non-test file (add doc.go with \"// Package x ...\" or \"// Command x ...\")",
				"onlytests: test-only package has no doc comment",
				"testdoc: package has no doc comment in a non-test file (add doc.go with \"// Package x ...\" or \"// Command x ...\")",
				`twice: package doc comment in several files ["twice/a.go" "twice/b.go"]; keep one`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			got := packageDocProblems(t, root)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("packageDocProblems() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
