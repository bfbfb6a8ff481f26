package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterSharesExisting(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "meridian_test_total", Help: "A test counter."}
	a, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("a second registration did not return the existing counter")
	}
	// The same name with other help text is a clash, not a share.
	if _, err := Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_test_total", Help: "Another counter."})); err == nil {
		t.Fatal("a clashing collector was accepted")
	}
}
