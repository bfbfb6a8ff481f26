package geo

import "math"

// earthRadiusKm is the mean Earth radius (IUGG).
const earthRadiusKm = 6371.0088

// Distance returns the great-circle distance in kilometres between two
// points given in degrees, by the haversine formula.
func Distance(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	s1, s2 := math.Sin(dLat/2), math.Sin(dLon/2)
	h := s1*s1 + math.Cos(lat1*rad)*math.Cos(lat2*rad)*s2*s2
	return 2 * earthRadiusKm * math.Asin(math.Sqrt(min(h, 1)))
}
