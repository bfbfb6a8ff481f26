package replica

import (
	"math"
	"strings"
	"testing"
)

func TestParseLag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		want       float64
		err        string
	}{
		{"json object", `{"lag_seconds": 0.8}`, 0.8, ""},
		{"json with other members", `{"state": "streaming", "lag_seconds": 12}` + "\n", 12, ""},
		{"bare number", "3.25\n", 3.25, ""},
		{"bare zero", "0", 0, ""},
		{"exponent", "1e-3", 0.001, ""},
		{"empty", "", 0, "empty answer"},
		{"no lag member", `{"lag": 1}`, 0, `no "lag_seconds"`},
		{"lag as string", `{"lag_seconds": "1"}`, 0, "neither a number"},
		{"negative", "-1", 0, "not a finite number of seconds at least 0"},
		{"negative in json", `{"lag_seconds": -0.5}`, 0, "at least 0"},
		{"NaN", "NaN", 0, "neither a number"},
		{"Inf", "+Inf", 0, "neither a number"},
		{"hex", "0x10", 0, "neither a number"},
		{"trailing garbage", "1 2", 0, "neither a number"},
		{"two objects", `{"lag_seconds": 1}{"lag_seconds": 2}`, 0, "data after the object"},
		{"huge", "1e400", 0, "neither a number"},
		{"bool", "true", 0, "neither a number"},
		{"null lag", `{"lag_seconds": null}`, 0, `no "lag_seconds"`},
		{"text", "lagging", 0, "neither a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLag([]byte(tc.body))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("got error %v, want %g", err, tc.want)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("got %g, %v; want an error with %q", got, err, tc.err)
			case tc.err == "" && got != tc.want:
				t.Fatalf("got %g, want %g", got, tc.want)
			}
		})
	}
}

func FuzzParseLag(f *testing.F) {
	for _, s := range []string{`{"lag_seconds": 0.8}`, "3.25", "", "-1", "NaN", `{"lag_seconds": 1e308}`, "1e400", `{"a":[1,{"b":2}],"lag_seconds":0}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := ParseLag(body)
		if err != nil {
			if v != 0 {
				t.Fatalf("error %v with value %g", err, v)
			}
			return
		}
		if !(v >= 0) || math.IsInf(v, 0) {
			t.Fatalf("accepted lag %g", v)
		}
	})
}
