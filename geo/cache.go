package geo

import (
	"sync"
	"sync/atomic"

	"github.com/oschwald/maxminddb-golang/v2"
)

// The place cache keeps up to placeCacheSize decoded records per database
// in placeCacheWays-way sets. Every network of a country database shares
// one of a few hundred records, so they all stay cached; a city database's
// hit rate follows the locality of its clients.
const (
	placeCacheSetBits = 10
	placeCacheWays    = 4
	placeCacheSize    = placeCacheWays << placeCacheSetBits
)

// place is a decoded and resolved database record: a Location without its
// Prefix, which depends on the address looked up.
type place struct {
	offset      uintptr // the record's offset in the data section
	country     string
	continent   string
	subdivision string
	lat, lon    float64
	hasCoords   bool
	found       bool
}

// placeCache maps record offsets to places. It is set-associative and
// lock-free: a slot holds an immutable *place, replaced whole on a miss.
type placeCache struct {
	slots  [placeCacheSize]atomic.Pointer[place]
	misses atomic.Uint32 // picks the way a miss replaces when its set is full
}

// get returns the place for the record res found. A miss decodes the record
// and allocates one place; a record that fails to decode becomes a place
// that is not found, so it is not decoded again.
func (c *placeCache) get(res maxminddb.Result) *place {
	off := res.Offset()
	set := c.slots[setOf(off)*placeCacheWays:][:placeCacheWays]
	free := -1
	for i := range set {
		p := set[i].Load()
		if p == nil {
			if free < 0 {
				free = i
			}
			continue
		}
		if p.offset == off {
			return p
		}
	}
	p := decodePlace(res)
	if free < 0 {
		free = int(c.misses.Add(1) % placeCacheWays)
	}
	set[free].Store(p)
	return p
}

// decodePlace decodes and resolves the record res found. A record that
// fails to decode is a place that is not found.
func decodePlace(res maxminddb.Result) *place {
	p := &place{offset: res.Offset()}
	rec := recordPool.Get().(*record)
	*rec = record{}
	if err := res.Decode(rec); err == nil {
		p.resolve(rec)
	}
	recordPool.Put(rec)
	return p
}

// recordPool keeps decode targets off the heap: Decode takes an interface.
var recordPool = sync.Pool{New: func() any { return new(record) }}

// setOf spreads record offsets over the cache sets (Fibonacci hashing).
func setOf(off uintptr) uint64 {
	return (uint64(off) * 0x9e3779b97f4a7c15) >> (64 - placeCacheSetBits)
}

// resolve fills p from rec: the country falls back to the registered
// country and the continent to the country's; coordinates come from the
// record, else the country centroid, else the continent centroid.
func (p *place) resolve(rec *record) {
	p.country = countryCode(rec.country)
	if p.country == "" {
		p.country = countryCode(rec.registeredCountry)
	}
	p.continent = continentCode(rec.continent)
	if p.continent == "" {
		p.continent = ContinentOf(p.country)
	}
	p.subdivision = subdivisionCode(rec.subdivision, p.country)
	if rec.hasLat && rec.hasLon && validCoords(rec.lat, rec.lon) {
		p.lat, p.lon, p.hasCoords = rec.lat, rec.lon, true
	} else if p.lat, p.lon, p.hasCoords = CountryCentroid(p.country); !p.hasCoords {
		p.lat, p.lon, p.hasCoords = ContinentCentroid(p.continent)
	}
	p.found = p.country != "" || p.continent != "" || p.hasCoords
}

// validCoords rejects out-of-range coordinates, NaN included.
func validCoords(lat, lon float64) bool {
	return lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180
}
