package geo

import _ "embed"

// builtinDB is DB-IP's IP to Country Lite database (CC BY 4.0, see
// data/LICENSE-DBIP.txt), converted to the GeoIP2 layout with country and
// continent names from countries-list (MIT, see
// data/LICENSE-countries-list.txt). Open("") reads it.
//
//go:embed data/dbip-country-lite.mmdb
var builtinDB []byte
