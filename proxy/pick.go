package proxy

import (
	"math"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strings"
)

// cookieName is the sticky cookie of services with proxy.sticky: cookie.
// Its value is "REGION:ENDPOINT-ID".
const cookieName = "meridian_region"

// leastLoaded picks among the untried endpoints of cands by the power of
// two choices: two weighted random draws, and the one with fewer requests
// in flight per unit of weight wins. It takes no locks.
func leastLoaded(cands []*endpoint, tried uint64) *endpoint {
	total, n := 0, 0
	var only *endpoint
	for _, e := range cands {
		if tried&e.bit == 0 {
			total += e.weight
			n++
			only = e
		}
	}
	switch n {
	case 0:
		return nil
	case 1:
		return only
	}
	a := weightedDraw(cands, tried, rand.IntN(total)) //nolint:gosec // G404: load balancing needs no secrecy
	b := weightedDraw(cands, tried, rand.IntN(total)) //nolint:gosec // G404: load balancing needs no secrecy
	if a == b {
		return a
	}
	// a's load per weight is at most b's: la/wa <= lb/wb.
	if a.st.inflight.Load()*int64(b.weight) <= b.st.inflight.Load()*int64(a.weight) {
		return a
	}
	return b
}

// weightedDraw returns the untried endpoint at cumulative weight x.
func weightedDraw(cands []*endpoint, tried uint64, x int) *endpoint {
	var last *endpoint
	for _, e := range cands {
		if tried&e.bit != 0 {
			continue
		}
		if x < e.weight {
			return e
		}
		x -= e.weight
		last = e
	}
	return last
}

// rendezvous returns the endpoint of cands that client key h maps to by
// weighted rendezvous hashing: it changes only for the clients of an
// endpoint that leaves the set.
func rendezvous(cands []*endpoint, h uint64) *endpoint {
	var best *endpoint
	bestScore := math.Inf(1)
	for _, e := range cands {
		u := (float64(mix(h^e.hash)>>11) + 0.5) / (1 << 53)
		score := -math.Log(u) / float64(e.weight)
		if score < bestScore {
			best, bestScore = e, score
		}
	}
	return best
}

// clientHash hashes a client address for sticky endpoint choice.
func clientHash(a netip.Addr) uint64 {
	b := a.As16()
	var h uint64 = 14695981039346656037
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return mix(h)
}

// mix is the splitmix64 finaliser.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// applyCookie honours a sticky cookie naming a region of the decision: that
// region moves to the front, and the endpoint it names (if still usable)
// is tried first.
func (ex *exchange) applyCookie(r *http.Request) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return
	}
	name, id, _ := strings.Cut(c.Value, ":")
	for i, ri := range ex.d.Order[:ex.d.N] {
		rg := ex.tab.regions[ri]
		if rg.name != name {
			continue
		}
		copy(ex.d.Order[1:i+1], ex.d.Order[:i])
		ex.d.Order[0] = ri
		for _, e := range rg.eps {
			if e.id == id {
				ex.stickyEP = e
			}
		}
		return
	}
}
