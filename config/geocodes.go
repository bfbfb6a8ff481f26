package config

import "strings"

// geoDefault is the geo match that applies when no other rule does.
const geoDefault = "default"

// continents are the two-letter continent codes GeoIP databases use.
var continents = map[string]bool{
	"AF": true, "AN": true, "AS": true, "EU": true, "NA": true, "OC": true, "SA": true,
}

// countries are the ISO 3166-1 alpha-2 codes GeoIP databases report,
// XK (Kosovo) included.
var countries = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Fields(countryCodes) {
		m[c] = true
	}
	return m
}()

const countryCodes = `
	AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI
	BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN
	CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK
	FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
	HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
	KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK
	ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP
	NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
	SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF
	TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
	VN VU WF WS XK YE YT ZA ZM ZW
`

// geoCodeKind classifies a normalized geo match code: "default",
// "continent", "country" or "subdivision" (COUNTRY-SUB, ISO 3166-2, the
// part after the dash one to three letters or digits); "" when invalid.
// Two-letter codes that name both a continent and a country (AF, AS, NA,
// SA) are reported as continents.
func geoCodeKind(code string) string {
	switch {
	case code == geoDefault:
		return "default"
	case continents[code]:
		return "continent"
	case countries[code]:
		return "country"
	}
	country, sub, ok := strings.Cut(code, "-")
	if !ok || !countries[country] || len(sub) < 1 || len(sub) > 3 {
		return ""
	}
	for _, r := range sub {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return ""
		}
	}
	return "subdivision"
}
