package config

import (
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDurationYAML(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "2s", want: 2 * time.Second},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "1m30s", want: 90 * time.Second},
		{in: "0", want: 0},
		{in: "-1s", want: -time.Second}, // parses; the checks refuse it where it matters
		{in: "2", wantErr: `invalid duration "2": a unit is required, e.g. 2s or 500ms`},
		{in: "two seconds", wantErr: `invalid duration "two seconds": use a Go duration such as 2s, 500ms or 1m30s`},
		{in: "[1s]", wantErr: "expected a single value, got a list"},
		{in: "{s: 1}", wantErr: "expected a single value, got a mapping"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var d Duration
			err := yaml.Unmarshal([]byte(tc.in), &d)
			checkUnit(t, err, tc.wantErr)
			if err == nil && d.D() != tc.want {
				t.Errorf("got %s, want %s", d, tc.want)
			}
		})
	}
}

func TestPercentYAML(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Percent
		wantErr string
	}{
		{in: "20%", want: 20},
		{in: "20", want: 20},
		{in: `"12.5 %"`, want: 12.5},
		{in: "0%", want: 0},
		{in: "twenty", wantErr: `invalid percentage "twenty": use a number of percent such as 20%`},
		{in: "NaN%", wantErr: `invalid percentage "NaN%": use a number of percent such as 20%`},
		{in: "{a: 1}", wantErr: "expected a single value, got a mapping"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var p Percent
			err := yaml.Unmarshal([]byte(tc.in), &p)
			checkUnit(t, err, tc.wantErr)
			if err == nil && p != tc.want {
				t.Errorf("got %v, want %v", p, tc.want)
			}
		})
	}
	if got, want := Percent(20).Fraction(), 0.2; got != want {
		t.Errorf("Fraction: got %v, want %v", got, want)
	}
	if got, want := Percent(12.5).String(), "12.5%"; got != want {
		t.Errorf("String: got %q, want %q", got, want)
	}
}

func TestByteSizeYAML(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    ByteSize
		wantErr string
	}{
		{in: "64KiB", want: 64 << 10},
		{in: "1MiB", want: 1 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "512B", want: 512},
		{in: "1024", want: 1024},
		{in: "2KB", want: 2000},
		{in: "3MB", want: 3000000},
		{in: "64 kib", want: 64 << 10},
		{in: "0", want: 0},
		{in: "1.5MiB", wantErr: `invalid size "1.5MiB": use a whole number with an optional unit B, KB, MB, GB, KiB, MiB or GiB`},
		{in: "KiB", wantErr: `invalid size "KiB": use a whole number with an optional unit B, KB, MB, GB, KiB, MiB or GiB`},
		{in: "12XB", wantErr: `invalid size "12XB": use a whole number with an optional unit B, KB, MB, GB, KiB, MiB or GiB`},
		{in: "-1", wantErr: `invalid size "-1": use a whole number with an optional unit B, KB, MB, GB, KiB, MiB or GiB`},
		{in: "99999999999TiB", wantErr: `invalid size "99999999999TiB": too large`},
		{in: "99999999999999999999", wantErr: `invalid size "99999999999999999999": too large`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var b ByteSize
			err := yaml.Unmarshal([]byte(tc.in), &b)
			checkUnit(t, err, tc.wantErr)
			if err == nil && b != tc.want {
				t.Errorf("got %d, want %d", b, tc.want)
			}
		})
	}
}

func checkUnit(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("got no error, want %q", want)
	case want != "" && err.Error() != want:
		t.Fatalf("got error %q, want %q", err, want)
	}
}
