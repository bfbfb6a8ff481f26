package anycast

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// GoBGP leaves the buffer goroutine of one of its internal unbounded
	// channels running after Stop; everything of ours must be gone.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/eapache/channels.(*InfiniteChannel).infiniteBuffer"))
}
