package geo

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// buildEpoch is 2026-02-04 22:49:00 UTC.
const buildEpoch = 1770245340

// buildDB writes a database of type dbType holding nets (CIDR → record).
func buildDB(t testing.TB, dbType string, ipVersion int, nets map[string]mmdbtype.Map) []byte {
	t.Helper()
	return buildDBWith(t, mmdbwriter.Options{
		DatabaseType: dbType,
		IPVersion:    ipVersion,
		RecordSize:   24,
		Languages:    []string{"en"},
		BuildEpoch:   buildEpoch,
	}, nets)
}

func buildDBWith(t testing.TB, opts mmdbwriter.Options, nets map[string]mmdbtype.Map) []byte {
	t.Helper()
	tree, err := mmdbwriter.New(opts)
	if err != nil {
		t.Fatalf("mmdbwriter.New: %v", err)
	}
	for cidr, rec := range nets {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatalf("parsing %s: %v", cidr, err)
		}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatalf("inserting %s: %v", cidr, err)
		}
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatalf("writing database: %v", err)
	}
	return buf.Bytes()
}

func names(en string) mmdbtype.Map {
	return mmdbtype.Map{"en": mmdbtype.String(en), "de": mmdbtype.String(en + "-de"), "ja": mmdbtype.String(en + "-ja")}
}

func iso(code string) mmdbtype.Map {
	return mmdbtype.Map{"iso_code": mmdbtype.String(code), "geoname_id": mmdbtype.Uint32(1), "names": names(code)}
}

func continent(code string) mmdbtype.Map {
	return mmdbtype.Map{"code": mmdbtype.String(code), "geoname_id": mmdbtype.Uint32(2), "names": names(code)}
}

func coords(lat, lon float64) mmdbtype.Map {
	return mmdbtype.Map{
		"latitude":        mmdbtype.Float64(lat),
		"longitude":       mmdbtype.Float64(lon),
		"accuracy_radius": mmdbtype.Uint16(10),
		"time_zone":       mmdbtype.String("Europe/London"),
	}
}

// cityDB is a GeoIP2-City database covering the cases Lookup resolves.
func cityDB(t testing.TB) []byte {
	return buildDB(t, "GeoIP2-City", 6, map[string]mmdbtype.Map{
		// Full City record: the first of two subdivisions wins; names,
		// postal code and traits are skipped.
		"81.2.69.0/24": {
			"city":               mmdbtype.Map{"names": names("London"), "geoname_id": mmdbtype.Uint32(3)},
			"continent":          continent("EU"),
			"country":            iso("GB"),
			"registered_country": iso("US"),
			"subdivisions":       mmdbtype.Slice{iso("ENG"), iso("LND")},
			"location":           coords(51.5142, -0.0931),
			"postal":             mmdbtype.Map{"code": mmdbtype.String("EC2")},
			"traits":             mmdbtype.Map{"is_anycast": mmdbtype.Bool(false)},
		},
		// Lower-case codes are normalised.
		"216.160.83.0/24": {
			"continent":    continent("na"),
			"country":      iso("us"),
			"subdivisions": mmdbtype.Slice{iso("wa")},
			"location":     coords(47.2513, -122.3149),
		},
		// A subdivision written with its country part; float32 coordinates.
		"2001:480:10::/48": {
			"continent":    continent("NA"),
			"country":      iso("US"),
			"subdivisions": mmdbtype.Slice{iso("US-CA")},
			"location": mmdbtype.Map{
				"latitude":  mmdbtype.Float32(32.75),
				"longitude": mmdbtype.Float32(-117.25),
			},
		},
		// No coordinates: the country centroid.
		"89.160.20.0/24": {"continent": continent("EU"), "country": iso("SE")},
		// Out-of-range coordinates: the country centroid.
		"149.101.100.0/28": {"continent": continent("NA"), "country": iso("US"), "location": coords(200, -97.822)},
		// Only a latitude: the country centroid.
		"202.196.224.0/20": {"country": iso("PH"), "location": mmdbtype.Map{"latitude": mmdbtype.Float64(13)}},
		// Continent only: the continent centroid.
		"2a02:d500::/29": {"continent": continent("EU")},
		// Registered country only: its continent and centroid.
		"67.43.156.0/24": {"registered_country": iso("BT")},
		// A code missing from the country table is kept.
		"175.16.199.0/24": {"country": iso("QZ")},
		// Coordinates only.
		"2.125.160.0/24": {"location": coords(51.75, -1.25)},
		// Nothing geographic: not found.
		"214.1.1.0/24": {"traits": mmdbtype.Map{"is_anycast": mmdbtype.Bool(true)}},
		// Wrong types: undecodable, not found.
		"50.114.0.0/16":    {"country": mmdbtype.String("US")},
		"74.209.24.0/24":   {"country": mmdbtype.Map{"iso_code": mmdbtype.Uint32(7)}},
		"111.235.160.0/24": {"location": mmdbtype.Map{"latitude": mmdbtype.String("north")}},
	})
}

func mustOpenBytes(t testing.TB, b []byte) *DB {
	t.Helper()
	db, err := OpenBytes(b)
	if err != nil {
		t.Fatalf("OpenBytes: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func centroid(t *testing.T, cc string) (float64, float64) {
	t.Helper()
	lat, lon, ok := CountryCentroid(cc)
	if !ok {
		t.Fatalf("CountryCentroid(%q) not found", cc)
	}
	return lat, lon
}

func TestLookupCity(t *testing.T) {
	t.Parallel()
	db := mustOpenBytes(t, cityDB(t))
	seLat, seLon := centroid(t, "SE")
	usLat, usLon := centroid(t, "US")
	phLat, phLon := centroid(t, "PH")
	btLat, btLon := centroid(t, "BT")
	euLat, euLon, _ := ContinentCentroid("EU")

	tests := []struct {
		name string
		ip   string
		want Location
	}{
		{"city record", "81.2.69.142", Location{"GB", "EU", "ENG", 51.5142, -0.0931, true, pfx("81.2.69.0/24"), true}},
		{"IPv4-mapped IPv6", "::ffff:81.2.69.142", Location{"GB", "EU", "ENG", 51.5142, -0.0931, true, pfx("81.2.69.0/24"), true}},
		{"6to4 alias", "2002:5102:458e::1", Location{"GB", "EU", "ENG", 51.5142, -0.0931, true, pfx("2002:5102:4500::/40"), true}},
		{"lower-case codes", "216.160.83.56", Location{"US", "NA", "WA", 47.2513, -122.3149, true, pfx("216.160.83.0/24"), true}},
		{"IPv6 with country-prefixed subdivision", "2001:480:10::1", Location{"US", "NA", "CA", 32.75, -117.25, true, pfx("2001:480:10::/48"), true}},
		{"IPv6 with zone", "2001:480:10::1%eth0", Location{"US", "NA", "CA", 32.75, -117.25, true, pfx("2001:480:10::/48"), true}},
		{"no coordinates", "89.160.20.112", Location{"SE", "EU", "", seLat, seLon, true, pfx("89.160.20.0/24"), true}},
		{"coordinates out of range", "149.101.100.1", Location{"US", "NA", "", usLat, usLon, true, pfx("149.101.100.0/28"), true}},
		{"latitude only, no continent", "202.196.224.1", Location{"PH", "AS", "", phLat, phLon, true, pfx("202.196.224.0/20"), true}},
		{"continent only", "2a02:d500::1", Location{"", "EU", "", euLat, euLon, true, pfx("2a02:d500::/29"), true}},
		{"registered country only", "67.43.156.1", Location{"BT", "AS", "", btLat, btLon, true, pfx("67.43.156.0/24"), true}},
		{"country missing from tables", "175.16.199.1", Location{"QZ", "", "", 0, 0, false, pfx("175.16.199.0/24"), true}},
		{"coordinates only", "2.125.160.216", Location{"", "", "", 51.75, -1.25, true, pfx("2.125.160.0/24"), true}},
		{"record without geography", "214.1.1.1", Location{Prefix: pfx("214.1.1.0/24")}},
		{"country of wrong type", "50.114.1.1", Location{Prefix: pfx("50.114.0.0/16")}},
		{"iso_code of wrong type", "74.209.24.9", Location{Prefix: pfx("74.209.24.0/24")}},
		{"latitude of wrong type", "111.235.160.9", Location{Prefix: pfx("111.235.160.0/24")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ip := netip.MustParseAddr(tc.ip)
			for range 2 { // the second lookup is served from the cache
				if got := db.Lookup(ip); got != tc.want {
					t.Fatalf("Lookup(%s)\n got  %+v\n want %+v", tc.ip, got, tc.want)
				}
			}
		})
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestLookupMiss(t *testing.T) {
	t.Parallel()
	db := mustOpenBytes(t, cityDB(t))
	tests := []struct {
		name string
		ip   string
		v4   bool
		want string // the network, when it does not depend on the writer's tree layout
	}{
		{"IPv4", "8.8.8.8", true, ""},
		{"IPv4-mapped IPv6", "::ffff:8.8.8.8", true, ""},
		{"reserved IPv4", "10.0.0.1", true, "10.0.0.0/8"},
		{"IPv6", "2001:4860:4860::8888", false, ""},
		{"reserved IPv6", "2001:db8::1", false, "2001:db8::/32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ip := netip.MustParseAddr(tc.ip)
			got := db.Lookup(ip)
			if got.Found || got.Country != "" || got.Continent != "" || got.HasCoords {
				t.Fatalf("Lookup(%s) = %+v, want not found", tc.ip, got)
			}
			if !got.Prefix.IsValid() || !got.Prefix.Contains(ip.Unmap()) || got.Prefix.Addr().Is4() != tc.v4 {
				t.Fatalf("Lookup(%s).Prefix = %v, want a network holding the address, IPv4 %v", tc.ip, got.Prefix, tc.v4)
			}
			if got.Prefix.Bits() == 0 {
				t.Fatalf("Lookup(%s).Prefix = %v, want a network narrower than the address space", tc.ip, got.Prefix)
			}
			if tc.want != "" && got.Prefix != pfx(tc.want) {
				t.Fatalf("Lookup(%s).Prefix = %v, want %s", tc.ip, got.Prefix, tc.want)
			}
		})
	}
	if got := db.Lookup(netip.Addr{}); got != (Location{}) {
		t.Errorf("Lookup(invalid address) = %+v, want zero Location", got)
	}
}

func TestLookupCountryLayout(t *testing.T) {
	t.Parallel()
	db := mustOpenBytes(t, buildDB(t, "GeoIP2-Country", 6, map[string]mmdbtype.Map{
		"81.2.69.0/24":  {"continent": continent("EU"), "country": iso("GB"), "registered_country": iso("US")},
		"2001:218::/32": {"continent": continent("AS"), "country": iso("JP")},
	}))
	gbLat, gbLon := centroid(t, "GB")
	jpLat, jpLon := centroid(t, "JP")
	for _, tc := range []struct {
		ip   string
		want Location
	}{
		{"81.2.69.142", Location{"GB", "EU", "", gbLat, gbLon, true, pfx("81.2.69.0/24"), true}},
		{"2001:218::1", Location{"JP", "AS", "", jpLat, jpLon, true, pfx("2001:218::/32"), true}},
	} {
		if got := db.Lookup(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("Lookup(%s)\n got  %+v\n want %+v", tc.ip, got, tc.want)
		}
	}
	if got, want := db.Description(), "GeoIP2-Country, built 2026-02-04"; got != want {
		t.Errorf("Description() = %q, want %q", got, want)
	}
}

func TestLookupIPv4OnlyDatabase(t *testing.T) {
	t.Parallel()
	db := mustOpenBytes(t, buildDB(t, "GeoLite2-Country", 4, map[string]mmdbtype.Map{
		"81.2.69.0/24": {"continent": continent("EU"), "country": iso("GB")},
	}))
	if got := db.Lookup(netip.MustParseAddr("::ffff:81.2.69.1")); got.Country != "GB" || got.Prefix != pfx("81.2.69.0/24") {
		t.Errorf("Lookup(::ffff:81.2.69.1) = %+v, want GB in 81.2.69.0/24", got)
	}
	if got := db.Lookup(netip.MustParseAddr("2001:218::1")); got != (Location{}) {
		t.Errorf("Lookup(IPv6) = %+v, want zero Location", got)
	}
}

// In an IPv6 database whose tree ends above ::/96, an IPv4 address lies in
// a network wider than the IPv4 space; its prefix is 0.0.0.0/0, not ::/N.
func TestLookupNoIPv4Subtree(t *testing.T) {
	t.Parallel()
	db := mustOpenBytes(t, buildDBWith(t, mmdbwriter.Options{
		DatabaseType:            "GeoIP2-Country",
		RecordSize:              24,
		DisableIPv4Aliasing:     true,
		IncludeReservedNetworks: true,
	}, map[string]mmdbtype.Map{"2001:218::/32": {"country": iso("JP")}}))
	if got, want := db.Lookup(netip.MustParseAddr("8.8.8.8")), (Location{Prefix: pfx("0.0.0.0/0")}); got != want {
		t.Errorf("Lookup(8.8.8.8) = %+v, want %+v", got, want)
	}
	if got := db.Lookup(netip.MustParseAddr("2001:218::1")); got.Country != "JP" || got.Continent != "AS" {
		t.Errorf("Lookup(2001:218::1) = %+v, want JP AS", got)
	}
}

func TestLookupConcurrent(t *testing.T) {
	t.Parallel()
	db := mustOpenBytes(t, cityDB(t))
	ips := []netip.Addr{
		netip.MustParseAddr("81.2.69.142"), netip.MustParseAddr("2001:480:10::1"),
		netip.MustParseAddr("89.160.20.112"), netip.MustParseAddr("2a02:d500::1"),
		netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("50.114.1.1"),
	}
	want := make([]Location, len(ips))
	fresh := mustOpenBytes(t, cityDB(t))
	for i, ip := range ips {
		want[i] = fresh.Lookup(ip)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := range 4 {
		wg.Go(func() {
			for n := range 500 {
				i := (n + g) % len(ips)
				if got := db.Lookup(ips[i]); got != want[i] {
					errs <- ips[i].String()
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for ip := range errs {
		t.Errorf("concurrent Lookup(%s) differs from a sequential one", ip)
	}
}

func TestOpenFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "city.mmdb")
	if err := os.WriteFile(path, cityDB(t), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	if got, want := db.Description(), "GeoIP2-City, built 2026-02-04"; got != want {
		t.Errorf("Description() = %q, want %q", got, want)
	}
	ip := netip.MustParseAddr("81.2.69.142")
	if got := db.Lookup(ip); got.Country != "GB" || got.Subdivision != "ENG" {
		t.Errorf("Lookup(%s) = %+v, want GB ENG", ip, got)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := db.Lookup(ip); got != (Location{}) {
		t.Errorf("Lookup after Close = %+v, want zero Location", got)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := []byte(strings.Repeat("not a maxmind database\n", 100))
	asn := buildDB(t, "GeoLite2-ASN", 6, map[string]mmdbtype.Map{
		"1.128.0.0/11": {"autonomous_system_number": mmdbtype.Uint32(1221)},
	})
	city := cityDB(t)
	tests := []struct {
		name    string
		open    func() (*DB, error)
		wantErr []string
	}{
		{"missing file", func() (*DB, error) { return Open(filepath.Join(dir, "missing.mmdb")) },
			[]string{`opening geoip database "` + filepath.Join(dir, "missing.mmdb") + `": `, "no such file"}},
		{"empty file", func() (*DB, error) { return Open(write("empty.mmdb", nil)) },
			[]string{`opening geoip database "`, "file is empty"}},
		{"garbage file", func() (*DB, error) { return Open(write("garbage.mmdb", garbage)) },
			[]string{`opening geoip database "` + filepath.Join(dir, "garbage.mmdb") + `": `, "invalid MaxMind DB file"}},
		{"ASN file", func() (*DB, error) { return Open(write("asn.mmdb", asn)) },
			[]string{`opening geoip database "`, `unsupported database type "GeoLite2-ASN": want a GeoIP2-layout Country or City database`}},
		{"garbage bytes", func() (*DB, error) { return OpenBytes(garbage) },
			[]string{"opening geoip database from memory: ", "invalid MaxMind DB file"}},
		{"no bytes", func() (*DB, error) { return OpenBytes(nil) },
			[]string{"opening geoip database from memory: ", "invalid MaxMind DB file"}},
		{"metadata cut off", func() (*DB, error) { return OpenBytes(city[:len(city)-40]) },
			[]string{"opening geoip database from memory: "}},
		{"ASN bytes", func() (*DB, error) { return OpenBytes(asn) },
			[]string{`opening geoip database from memory: unsupported database type "GeoLite2-ASN"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := tc.open()
			if err == nil {
				_ = db.Close()
				t.Fatalf("got no error, want one containing %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// A database whose search tree turns to garbage under an open DB (a mapped
// file overwritten in place) finds nothing, and does not panic.
func TestLookupCorruptTree(t *testing.T) {
	t.Parallel()
	b := cityDB(t)
	db := mustOpenBytes(t, b)
	treeSize := db.r.Metadata.NodeCount * db.r.Metadata.RecordSize / 4
	for i := range treeSize {
		b[i] = 0xff
	}
	for _, s := range []string{"81.2.69.142", "2001:480:10::1", "8.8.8.8"} {
		if got := db.Lookup(netip.MustParseAddr(s)); got != (Location{}) {
			t.Errorf("Lookup(%s) in a corrupt database = %+v, want zero Location", s, got)
		}
	}
}

// More distinct records than the place cache holds: every lookup, first or
// repeated, still returns its own record.
func TestLookupMoreRecordsThanCache(t *testing.T) {
	t.Parallel()
	const n = placeCacheSize + placeCacheSize/2
	nets := make(map[string]mmdbtype.Map, n)
	for i := range n {
		nets[fmt.Sprintf("1.%d.%d.0/24", i/256, i%256)] = mmdbtype.Map{
			"country":  iso("NZ"),
			"location": mmdbtype.Map{"latitude": mmdbtype.Float64(-40), "longitude": mmdbtype.Float64(float64(i) / 100)},
		}
	}
	db := mustOpenBytes(t, buildDB(t, "GeoIP2-City", 6, nets))
	for round := range 2 {
		for i := range n {
			ip := netip.AddrFrom4([4]byte{1, byte(i / 256), byte(i % 256), 7})
			got := db.Lookup(ip)
			if got.Country != "NZ" || got.Continent != "OC" || got.Lon != float64(i)/100 {
				t.Fatalf("round %d: Lookup(%s) = %+v, want NZ OC with longitude %v", round, ip, got, float64(i)/100)
			}
		}
	}
}
