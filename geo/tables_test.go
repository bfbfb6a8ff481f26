package geo

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"strconv"
	"testing"
)

// The generated table must match its source; rerun gen_tables.go when the
// CSV changes.
func TestCountryCentroidsMatchCSV(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("data/dbip-country-centroids.csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("reading centroids: %v", err)
	}
	rows = rows[1:] // header
	if len(rows) != len(countries) {
		t.Errorf("CSV has %d countries, table %d", len(rows), len(countries))
	}
	for _, r := range rows {
		wantLat, _ := strconv.ParseFloat(r[1], 64)
		wantLon, _ := strconv.ParseFloat(r[2], 64)
		lat, lon, ok := CountryCentroid(r[0])
		if !ok || lat != wantLat || lon != wantLon {
			t.Errorf("CountryCentroid(%q) = %v, %v, %v; want %v, %v, true", r[0], lat, lon, ok, wantLat, wantLon)
		}
		if c := ContinentOf(r[0]); continentCode(c) == "" {
			t.Errorf("ContinentOf(%q) = %q, want a continent code", r[0], c)
		}
	}
}

func TestCountryTables(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cc            string
		continent     string
		lat, lon      float64
		centroidFound bool
	}{
		{"US", "NA", 39.5888, -89.7209, true},
		{"gb", "EU", 51.8326, -0.4963, true},
		{"Ru", "EU", 57.246, 48.3946, true},
		{"CN", "AS", 33.6195, 115.6053, true},
		{"AU", "OC", -33.9183, 147.4489, true},
		{"BR", "SA", -21.3243, -47.0195, true},
		{"ZA", "AF", -28.6748, 25.6778, true},
		{"AQ", "AN", -81.962, 145.7453, true},
		{"XK", "EU", 0, 0, true},
		{"", "", 0, 0, false},
		{"U", "", 0, 0, false},
		{"USA", "", 0, 0, false},
		{"ZZ", "", 0, 0, false},
		{"1A", "", 0, 0, false},
		{"U\x00", "", 0, 0, false},
		{"{[", "", 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.cc, func(t *testing.T) {
			if got := ContinentOf(tc.cc); got != tc.continent {
				t.Errorf("ContinentOf(%q) = %q, want %q", tc.cc, got, tc.continent)
			}
			lat, lon, ok := CountryCentroid(tc.cc)
			if ok != tc.centroidFound || (tc.lat != 0 && (lat != tc.lat || lon != tc.lon)) {
				t.Errorf("CountryCentroid(%q) = %v, %v, %v; want %v, %v, %v", tc.cc, lat, lon, ok, tc.lat, tc.lon, tc.centroidFound)
			}
		})
	}
}

func TestContinentCentroid(t *testing.T) {
	t.Parallel()
	// Each centroid lies within 3000 km of a known point of its continent.
	tests := []struct {
		code     string
		lat, lon float64
	}{
		{"AF", 0, 20},    // Congo basin
		{"AN", -80, 0},   // interior of Antarctica
		{"AS", 30, 110},  // central China
		{"EU", 50, 10},   // Germany
		{"na", 40, -95},  // Kansas
		{"OC", -30, 145}, // New South Wales
		{"SA", -15, -55}, // Mato Grosso
	}
	for _, tc := range tests {
		lat, lon, ok := ContinentCentroid(tc.code)
		if !ok {
			t.Errorf("ContinentCentroid(%q) not found", tc.code)
			continue
		}
		if d := Distance(lat, lon, tc.lat, tc.lon); d > 3000 {
			t.Errorf("ContinentCentroid(%q) = %v, %v: %.0f km from %v, %v", tc.code, lat, lon, d, tc.lat, tc.lon)
		}
	}
	for _, bad := range []string{"", "E", "EUR", "XX", "US"} {
		if lat, lon, ok := ContinentCentroid(bad); ok {
			t.Errorf("ContinentCentroid(%q) = %v, %v, true; want not found", bad, lat, lon)
		}
	}
}

func TestSubdivisionCode(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, cc, want string }{
		{"CA", "US", "CA"},
		{"ca", "US", "CA"},
		{"US-CA", "US", "CA"},
		{"us-ca", "US", "CA"},
		{"ENG", "GB", "ENG"},
		{"22", "CN", "22"},
		{"FR-CA", "US", ""},
		{"", "US", ""},
		{"ABCD", "US", ""},
		{"C-A", "", ""},
		{"C A", "US", ""},
	}
	for _, tc := range tests {
		if got := subdivisionCode(tc.in, tc.cc); got != tc.want {
			t.Errorf("subdivisionCode(%q, %q) = %q, want %q", tc.in, tc.cc, got, tc.want)
		}
	}
}

func TestDistance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                   string
		lat1, lon1, lat2, lon2 float64
		want, tolerance        float64
	}{
		{"London to New York", 51.5074, -0.1278, 40.7128, -74.0060, 5570, 0.01},
		{"same point", 48.85, 2.35, 48.85, 2.35, 0, 0},
		{"antipodes", 0, 0, 0, 180, math.Pi * earthRadiusKm, 1e-9},
		{"pole to pole", 90, 0, -90, 0, math.Pi * earthRadiusKm, 1e-9},
		{"across the antimeridian", 0, 179.5, 0, -179.5, 111.2, 0.01},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Distance(tc.lat1, tc.lon1, tc.lat2, tc.lon2)
			if math.Abs(got-tc.want) > tc.want*tc.tolerance+1e-9 {
				t.Errorf("Distance = %.3f km, want %.3f ±%.1f%%", got, tc.want, tc.tolerance*100)
			}
			if back := Distance(tc.lat2, tc.lon2, tc.lat1, tc.lon1); math.Abs(back-got) > 1e-9 {
				t.Errorf("Distance is not symmetric: %.6f and %.6f", got, back)
			}
		})
	}
}
