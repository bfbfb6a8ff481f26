package certs

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// leakWait bounds how long TestMain waits for goroutines to end. certmagic
// refreshes a storage lock file every 5s and notices its removal only on its
// next wake.
const leakWait = 10 * time.Second

func TestMain(m *testing.M) {
	if ep := os.Getenv(lockHolderEnv); ep != "" {
		os.Exit(runLockHolder(ep))
	}
	code := m.Run()
	removePebbleBuild()
	if code == 0 {
		if err := findLeaks(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// findLeaks checks, repeatedly until leakWait has passed, that no goroutine
// outlives the tests.
func findLeaks() error {
	deadline := time.Now().Add(leakWait)
	for {
		err := goleak.Find(
			// certmagic keeps one rate limiter per CA and account for the
			// life of the process and offers no way to stop it.
			goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*RingBufferRateLimiter).loop"),
		)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}
