package config

import (
	"errors"
	"strings"
	"testing"
)

// The blocks below complete a config; each case writes its own lines first
// so that the line numbers in its want list are easy to read off.
const (
	regionR1 = `regions:
  - name: r1
    endpoints: [{address: 192.0.2.1}]
`
	zonesAndService = `zones:
  - name: example.com
    nameservers: [ns1.example.com]
services:
  - name: api
    hostnames: [api.example.com]
    regions: [r1]
`
)

type errCase struct {
	name  string
	yaml  string
	env   map[string]string
	files map[string]string // beside the config
	// want lists every error. "N: msg" stands for "f.yaml:N: msg"; other
	// files are written out in full.
	want []string
}

// loadErrors loads yaml as f.yaml in a fresh folder and returns its errors.
func loadErrors(t *testing.T, tc errCase) []string {
	t.Helper()
	t.Chdir(t.TempDir())
	for k, v := range tc.env {
		t.Setenv(k, v)
	}
	for name, content := range tc.files {
		write(t, name, content)
	}
	write(t, "f.yaml", tc.yaml)
	c, err := Load("f.yaml")
	if err == nil {
		t.Fatalf("Load succeeded, want errors")
	}
	if c != nil {
		t.Errorf("Load returned a config with its errors")
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %T %v, want *Errors", err, err)
	}
	var got []string
	for _, e := range errs.Errs {
		if e.File == "" || e.Line < 1 || e.Msg == "" {
			t.Errorf("error without file, line or message: %#v", e)
		}
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != err.Error() {
		t.Errorf("Error() does not join the errors:\n%s", err)
	}
	return got
}

func runErrCases(t *testing.T, cases []errCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := loadErrors(t, tc)
			want := make([]string, len(tc.want))
			for i, w := range tc.want {
				if w != "" && w[0] >= '0' && w[0] <= '9' {
					w = "f.yaml:" + w
				}
				want[i] = w
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
