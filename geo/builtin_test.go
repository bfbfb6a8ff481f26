package geo

import (
	"net/netip"
	"testing"

	"github.com/oschwald/maxminddb-golang/v2"
)

func openBuiltin(t testing.TB) *DB {
	t.Helper()
	db, err := Open("")
	if err != nil {
		t.Fatalf(`Open(""): %v`, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// The rows are the stable ones listed for the DB-IP database (no anycast
// addresses whose country differs between sources).
func TestBuiltinLookup(t *testing.T) {
	t.Parallel()
	db := openBuiltin(t)
	if got, want := db.Description(), "built-in DBIP-Country-Lite, built 2026-06-01"; got != want {
		t.Errorf("Description() = %q, want %q", got, want)
	}
	tests := []struct {
		ip                 string
		country, continent string
		lat, lon           float64
	}{
		{"8.8.8.8", "US", "NA", 39.5888, -89.7209},
		{"::ffff:8.8.8.8", "US", "NA", 39.5888, -89.7209},
		{"81.2.69.142", "GB", "EU", 51.8326, -0.4963},
		{"175.16.199.0", "CN", "AS", 33.6195, 115.6053},
		{"1.1.1.1", "AU", "OC", -33.9183, 147.4489},
		{"77.88.8.8", "RU", "EU", 57.246, 48.3946},
		{"2001:200::1", "JP", "AS", 35.6121, 139.1397},
		{"2800:3f0:4001::1", "BR", "SA", -21.3243, -47.0195},
		{"196.216.2.1", "ZA", "AF", -28.6748, 25.6778},
	}
	for _, tc := range tests {
		ip := netip.MustParseAddr(tc.ip)
		got := db.Lookup(ip)
		want := Location{Country: tc.country, Continent: tc.continent, Lat: tc.lat, Lon: tc.lon, HasCoords: true, Prefix: got.Prefix, Found: true}
		if got != want {
			t.Errorf("Lookup(%s)\n got  %+v\n want %+v", tc.ip, got, want)
		}
		if !got.Prefix.Contains(ip.Unmap()) || got.Prefix.Addr().Is4() != ip.Unmap().Is4() {
			t.Errorf("Lookup(%s).Prefix = %v, want a network of the same family holding it", tc.ip, got.Prefix)
		}
		if cont := ContinentOf(got.Country); cont != got.Continent {
			t.Errorf("ContinentOf(%q) = %q, database says %q", got.Country, cont, got.Continent)
		}
	}

	ip := netip.MustParseAddr("81.2.69.142")
	if got, want := db.Lookup(ip).Prefix, pfx("81.2.64.0/18"); got != want {
		t.Errorf("Lookup(%s).Prefix = %v, want %v", ip, got, want)
	}
	for _, s := range []string{"127.0.0.1", "10.0.0.1", "192.168.1.1", "2001:db8::1"} {
		if got := db.Lookup(netip.MustParseAddr(s)); got.Found || got.Country != "" {
			t.Errorf("Lookup(%s) = %+v, want not found", s, got)
		}
	}
	if got, want := db.Lookup(netip.MustParseAddr("127.0.0.1")).Prefix, pfx("127.0.0.0/8"); got != want {
		t.Errorf("Lookup(127.0.0.1).Prefix = %v, want %v", got, want)
	}
}

// Every record of the built-in database fits the place cache at once, so
// lookups in it never decode again after warming up.
func TestBuiltinRecordsFitCache(t *testing.T) {
	t.Parallel()
	db := openBuiltin(t)
	perSet := map[uint64]map[uintptr]bool{}
	for res := range db.r.Networks() {
		set := setOf(res.Offset())
		if perSet[set] == nil {
			perSet[set] = map[uintptr]bool{}
		}
		perSet[set][res.Offset()] = true
	}
	for set, offs := range perSet {
		if len(offs) > placeCacheWays {
			t.Errorf("cache set %d holds %d records, want at most %d", set, len(offs), placeCacheWays)
		}
	}
}

var benchIPs = []netip.Addr{
	netip.MustParseAddr("8.8.8.8"),
	netip.MustParseAddr("81.2.69.142"),
	netip.MustParseAddr("175.16.199.0"),
	netip.MustParseAddr("1.1.1.1"),
	netip.MustParseAddr("::ffff:77.88.8.8"),
	netip.MustParseAddr("2001:200::1"),
	netip.MustParseAddr("2800:3f0:4001::1"),
	netip.MustParseAddr("127.0.0.1"),
}

func TestBuiltinLookupAllocs(t *testing.T) {
	db := openBuiltin(t)
	for _, ip := range benchIPs {
		db.Lookup(ip) // decode each record once
	}
	allocs := testing.AllocsPerRun(50, func() {
		for _, ip := range benchIPs {
			db.Lookup(ip)
		}
	})
	if allocs != 0 {
		t.Errorf("Lookup allocates %v times per %d cached lookups, want 0", allocs, len(benchIPs))
	}
}

func BenchmarkLookup(b *testing.B) {
	db := openBuiltin(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		db.Lookup(benchIPs[i%len(benchIPs)])
	}
}

// BenchmarkDecode measures a cache miss: decoding and resolving a record.
func BenchmarkDecode(b *testing.B) {
	db := openBuiltin(b)
	var results []maxminddb.Result
	for _, ip := range benchIPs {
		if res := db.r.Lookup(ip); res.Found() {
			results = append(results, res)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if p := decodePlace(results[i%len(results)]); !p.found {
			b.Fatal("record not found")
		}
	}
}
