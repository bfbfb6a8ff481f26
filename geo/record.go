package geo

import (
	"fmt"

	"github.com/oschwald/maxminddb-golang/v2/mmdbdata"
)

// record is the part of a GeoIP2 Country or City record that geo uses. It
// decodes itself from the database without reflection, reading only the
// fields below and skipping the rest (names, postal codes, traits, …):
//
//	continent.code, country.iso_code, registered_country.iso_code,
//	subdivisions[0].iso_code, location.latitude, location.longitude
type record struct {
	continent, country, registeredCountry, subdivision string
	lat, lon                                           float64
	hasLat, hasLon                                     bool
}

var _ mmdbdata.CursorUnmarshaler = (*record)(nil)

// UnmarshalMaxMindDBCursor implements mmdbdata.CursorUnmarshaler.
func (r *record) UnmarshalMaxMindDBCursor(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	m, err := c.MapReader()
	if err != nil {
		return mmdbdata.Cursor{}, mmdbdata.NormalizeUnmarshalError[record](err)
	}
	next := m.First()
	for range m.Len() {
		key, v, err := next.ReadMapKey()
		if err != nil {
			return mmdbdata.Cursor{}, err
		}
		switch string(key) {
		case "continent":
			next, err = readStringField(v, "code", &r.continent)
		case "country":
			next, err = readStringField(v, "iso_code", &r.country)
		case "registered_country":
			next, err = readStringField(v, "iso_code", &r.registeredCountry)
		case "subdivisions":
			next, err = r.readSubdivisions(v)
		case "location":
			next, err = r.readLocation(v)
		default:
			next, err = v.Skip()
		}
		if err != nil {
			return mmdbdata.Cursor{}, fmt.Errorf("decoding %s: %w", key, err)
		}
	}
	return m.End(next)
}

// readStringField reads the string at key name of the map at c into out,
// skipping the map's other entries.
func readStringField(c mmdbdata.Cursor, name string, out *string) (mmdbdata.Cursor, error) {
	m, err := c.MapReader()
	if err != nil {
		return mmdbdata.Cursor{}, mmdbdata.NormalizeUnmarshalError[map[string]any](err)
	}
	next := m.First()
	for range m.Len() {
		key, v, err := next.ReadMapKey()
		if err != nil {
			return mmdbdata.Cursor{}, err
		}
		if string(key) == name {
			*out, next, err = v.ReadStringMaxSize(maxCodeLen)
			if err != nil {
				return mmdbdata.Cursor{}, fmt.Errorf("decoding %s: %w", name, mmdbdata.NormalizeUnmarshalError[string](err))
			}
			continue
		}
		if next, err = v.Skip(); err != nil {
			return mmdbdata.Cursor{}, err
		}
	}
	return m.End(next)
}

// maxCodeLen bounds the ISO codes read from a database; real ones have 1–3
// characters.
const maxCodeLen = 16

// readSubdivisions keeps the first (largest) subdivision's ISO code.
func (r *record) readSubdivisions(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	s, err := c.Slice()
	if err != nil {
		return mmdbdata.Cursor{}, mmdbdata.NormalizeUnmarshalError[[]any](err)
	}
	var next mmdbdata.Cursor
	for {
		i, v, ok := s.Next(next)
		if !ok {
			break
		}
		if i == 0 {
			next, err = readStringField(v, "iso_code", &r.subdivision)
		} else {
			next, err = v.Skip()
		}
		if err != nil {
			return mmdbdata.Cursor{}, err
		}
	}
	return s.End()
}

func (r *record) readLocation(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	m, err := c.MapReader()
	if err != nil {
		return mmdbdata.Cursor{}, mmdbdata.NormalizeUnmarshalError[map[string]any](err)
	}
	next := m.First()
	for range m.Len() {
		key, v, err := next.ReadMapKey()
		if err != nil {
			return mmdbdata.Cursor{}, err
		}
		switch string(key) {
		case "latitude":
			r.lat, next, err = v.ReadFloat()
			r.hasLat = err == nil
		case "longitude":
			r.lon, next, err = v.ReadFloat()
			r.hasLon = err == nil
		default:
			next, err = v.Skip()
		}
		if err != nil {
			return mmdbdata.Cursor{}, fmt.Errorf("decoding %s: %w", key, mmdbdata.NormalizeUnmarshalError[float64](err))
		}
	}
	return m.End(next)
}
