// Package geo maps IP addresses to locations: country, continent,
// subdivision, coordinates and the database network that matched. It reads
// MaxMind DB files in the GeoIP2 Country or City layout (MaxMind GeoIP2 and
// GeoLite2, DB-IP) and carries a built-in DB-IP Country Lite database, the
// country and continent centroid tables, and great-circle distance.
//
// Lookup sits on the DNS hot path: it takes no locks and, once a database
// record has been seen, allocates nothing. The package makes no steering
// decisions, does no network I/O, logs nothing and starts no goroutines.
package geo

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Location is what a database says about one IP address.
type Location struct {
	Country     string // ISO 3166-1 alpha-2, upper case; "" unknown
	Continent   string // AF AN AS EU NA OC SA; "" unknown
	Subdivision string // ISO 3166-2 code without country, e.g. "CA" (for US-CA); "" unknown
	Lat, Lon    float64
	HasCoords   bool // Lat/Lon valid (city coords, else country centroid, else continent centroid)
	// Prefix is the database network that matched; IPv4 addresses get IPv4
	// prefixes (81.2.69.0/24, never ::ffff: forms). It is set on a miss too,
	// to the network without data, and invalid when the lookup failed.
	Prefix netip.Prefix
	// Found reports that the database located the address: its record gave
	// a country, a continent or coordinates.
	Found bool
}

// DB is an open geolocation database. Lookup is safe for concurrent use;
// Close must not race with it.
type DB struct {
	r     *maxminddb.Reader
	desc  string
	cache placeCache
}

// Open opens the MaxMind DB file at path, which must hold a Country or City
// database in the GeoIP2 layout. The empty path opens the built-in DB-IP
// Country Lite database.
func Open(path string) (*DB, error) {
	if path == "" {
		db, err := newDB(builtinDB, "built-in ")
		if err != nil {
			return nil, fmt.Errorf("opening built-in geoip database: %w", err)
		}
		return db, nil
	}
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening geoip database %q: %w", path, err)
	}
	db, err := fromReader(r, "")
	if err != nil {
		_ = r.Close() // the open error is the one that matters
		return nil, fmt.Errorf("opening geoip database %q: %w", path, err)
	}
	return db, nil
}

// OpenBytes opens a database held in memory. The DB keeps b, which must not
// be modified while the DB is in use.
func OpenBytes(b []byte) (*DB, error) {
	db, err := newDB(b, "")
	if err != nil {
		return nil, fmt.Errorf("opening geoip database from memory: %w", err)
	}
	return db, nil
}

func newDB(b []byte, origin string) (*DB, error) {
	r, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, err
	}
	return fromReader(r, origin)
}

func fromReader(r *maxminddb.Reader, origin string) (*DB, error) {
	m := r.Metadata
	if !supportedType(m.DatabaseType) {
		return nil, fmt.Errorf("unsupported database type %q: want a GeoIP2-layout Country or City database", m.DatabaseType)
	}
	return &DB{
		r:    r,
		desc: fmt.Sprintf("%s%s, built %s", origin, m.DatabaseType, m.BuildTime().UTC().Format("2006-01-02")),
	}, nil
}

// supportedType reports whether databases of type t carry GeoIP2 country
// records: MaxMind's and DB-IP's Country, City and Enterprise types.
func supportedType(t string) bool {
	for _, s := range []string{"Country", "City", "Enterprise", "DBIP-Location"} {
		if strings.Contains(t, s) {
			return true
		}
	}
	return false
}

// Description names the database type and build date, for status output,
// e.g. "built-in DBIP-Country-Lite, built 2026-06-01".
func (d *DB) Description() string { return d.desc }

// Close releases the database. Lookups after Close find nothing.
func (d *DB) Close() error {
	if err := d.r.Close(); err != nil {
		return fmt.Errorf("closing geoip database: %w", err)
	}
	return nil
}

// Lookup locates ip. IPv4-mapped IPv6 addresses are looked up as IPv4 and
// zones are ignored. On a miss Found is false and Prefix, when the database
// gives it, is the network without data that holds ip.
func (d *DB) Lookup(ip netip.Addr) Location {
	if !ip.IsValid() {
		return Location{}
	}
	ip = ip.Unmap().WithZone("")
	res := d.r.Lookup(ip)
	if res.Err() != nil {
		return Location{}
	}
	loc := Location{Prefix: networkOf(ip, res.Prefix())}
	if !res.Found() {
		return loc
	}
	p := d.cache.get(res)
	loc.Country, loc.Continent, loc.Subdivision = p.country, p.continent, p.subdivision
	loc.Lat, loc.Lon, loc.HasCoords = p.lat, p.lon, p.hasCoords
	loc.Found = p.found
	return loc
}

// networkOf returns the prefix the reader reported for ip in ip's own
// family. An IPv4 address in an IPv6 database whose IPv4 subtree ends above
// ::/96 lies in a network wider than the IPv4 space: that is 0.0.0.0/0.
func networkOf(ip netip.Addr, p netip.Prefix) netip.Prefix {
	if ip.Is4() && !p.Addr().Is4() {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return p
}
