package policy

import "net/netip"

// HashString is a stable 64-bit FNV-1a hash, the same on every node of a
// fleet, so that one client gets one region wherever it lands.
func HashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix is the splitmix64 finaliser: a fast, well-spread 64-bit mix.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// clientKey reduces a client address to its /24 (IPv4) or /56 (IPv6), the
// granularity at which dial rolls are made.
func clientKey(a netip.Addr) uint64 {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2]) | 4<<56
	}
	if !a.IsValid() {
		return 0
	}
	b := a.As16()
	var k uint64
	for i := 0; i < 7; i++ {
		k = k<<8 | uint64(b[i])
	}
	return k | 6<<56
}

// roll returns the client's roll for a region, uniform in [0, 10000).
func roll(client, salt, region uint64) int {
	return int(mix(mix(client^salt)^region) % 10000)
}

// unit returns the client's uniform variate in (0, 1) for a region.
func unit(client, salt, region uint64) float64 {
	h := mix(mix(client^salt^0x9e3779b97f4a7c15) ^ region)
	return (float64(h>>11) + 0.5) / (1 << 53)
}
