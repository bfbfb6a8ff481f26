package config

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, that every error it
// reports has a line, and that a config it accepts passes Validate.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	if full, err := os.ReadFile("testdata/full.yaml"); err == nil {
		f.Add(full)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if c != nil {
				t.Fatal("a config returned with errors")
			}
			var errs *Errors
			if !errors.As(err, &errs) || len(errs.Errs) == 0 {
				t.Fatalf("got %T %v, want *Errors", err, err)
			}
			for _, e := range errs.Errs {
				if e.Line < 1 || e.Msg == "" {
					t.Fatalf("error without a line or message: %#v", e)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate refuses: %v", err)
		}
	})
}
