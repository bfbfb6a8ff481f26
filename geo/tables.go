package geo

import "strings"

//go:generate go run gen_tables.go

// countryInfo is one row of the generated country table.
type countryInfo struct {
	cc, continent string
	lat, lon      float64
}

// countryIndex holds, for each two-letter code AA…ZZ, 1 + the code's
// position in countries, or 0 for an unknown code.
var countryIndex [26 * 26]int

func init() {
	for i, c := range countries {
		k, _ := codeKey(c.cc)
		countryIndex[k] = i + 1
	}
}

// codeKey maps a two-letter code, in either case, to 0…675.
func codeKey(s string) (int, bool) {
	if len(s) != 2 {
		return 0, false
	}
	a, b := s[0]|0x20, s[1]|0x20 // ASCII lower case
	if a < 'a' || a > 'z' || b < 'a' || b > 'z' {
		return 0, false
	}
	return int(a-'a')*26 + int(b-'a'), true
}

func lookupCountry(cc string) (*countryInfo, bool) {
	k, ok := codeKey(cc)
	if !ok || countryIndex[k] == 0 {
		return nil, false
	}
	return &countries[countryIndex[k]-1], true
}

// CountryCentroid returns the IP-address-weighted centroid of the country
// with ISO 3166-1 alpha-2 code cc (either case), from DB-IP data.
func CountryCentroid(cc string) (lat, lon float64, ok bool) {
	c, ok := lookupCountry(cc)
	if !ok {
		return 0, 0, false
	}
	return c.lat, c.lon, true
}

// ContinentOf returns the continent code (AF AN AS EU NA OC SA) of the
// country with code cc (either case), or "" for an unknown code. Russia is
// in Europe, as in MaxMind's databases.
func ContinentOf(cc string) string {
	c, ok := lookupCountry(cc)
	if !ok {
		return ""
	}
	return c.continent
}

// ContinentCentroid returns the centroid of continent code (AF AN AS EU NA
// OC SA, either case): its countries' centroids averaged, weighted by IPv4
// address count, so the point is where the continent's clients mostly are.
func ContinentCentroid(code string) (lat, lon float64, ok bool) {
	c, ok := lookupContinent(code)
	if !ok {
		return 0, 0, false
	}
	return c.lat, c.lon, true
}

// continentInfo is one row of the generated continent table.
type continentInfo struct {
	code     string
	lat, lon float64
}

func lookupContinent(code string) (*continentInfo, bool) {
	k, ok := codeKey(code)
	if !ok {
		return nil, false
	}
	for i := range continents {
		if ck, _ := codeKey(continents[i].code); ck == k {
			return &continents[i], true
		}
	}
	return nil, false
}

// continentCode returns s as an upper-case continent code, or "" when s is
// not one.
func continentCode(s string) string {
	c, ok := lookupContinent(s)
	if !ok {
		return ""
	}
	return c.code
}

// countryCode returns s as an upper-case ISO 3166-1 alpha-2 code, or ""
// when s is not two letters. Codes missing from the country table are kept.
func countryCode(s string) string {
	if c, ok := lookupCountry(s); ok {
		return c.cc
	}
	if _, ok := codeKey(s); !ok {
		return ""
	}
	return strings.ToUpper(s)
}

// subdivisionCode returns s, the ISO 3166-2 subdivision code of a place in
// country cc, upper case and without the country part ("US-CA" → "CA"), or
// "" when s is not 1–3 letters and digits.
func subdivisionCode(s, cc string) string {
	if len(s) > 3 && cc != "" && len(s) > len(cc) && s[len(cc)] == '-' && strings.EqualFold(s[:len(cc)], cc) {
		s = s[len(cc)+1:]
	}
	if len(s) < 1 || len(s) > 3 {
		return ""
	}
	for i := range len(s) {
		c := s[i] | 0x20
		if (c < 'a' || c > 'z') && (s[i] < '0' || s[i] > '9') {
			return ""
		}
	}
	return strings.ToUpper(s)
}
