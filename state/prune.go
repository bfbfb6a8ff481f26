package state

import (
	"fmt"
	"slices"
)

// Prune fits s to a configuration: services maps each configured service to
// its regions, regions lists every configured region. It drops the dials of
// services and service regions no longer configured and the overrides of
// unknown regions, and aborts running shifts whose service or region is gone
// (their dial went with it). It returns one human-readable warning per thing
// it dropped, in a stable order, or nil when s already fits. A nil services
// map or regions list means none are configured.
//
// Prune edits s in place; call it inside Update to store the result.
func Prune(s *Snapshot, services map[string][]string, regions []string) []string {
	var warnings []string
	for _, svc := range sortedKeys(s.Dials) {
		configured, ok := services[svc]
		if !ok {
			warnings = append(warnings, fmt.Sprintf("dropping stored dials of service %q: service no longer configured", svc))
			delete(s.Dials, svc)
			continue
		}
		for _, r := range sortedKeys(s.Dials[svc]) {
			if !slices.Contains(configured, r) {
				warnings = append(warnings, fmt.Sprintf("dropping stored dial %d of %s/%s: region no longer serves the service", s.Dials[svc][r], svc, r))
				delete(s.Dials[svc], r)
			}
		}
		if len(s.Dials[svc]) == 0 {
			delete(s.Dials, svc)
		}
	}
	for _, r := range sortedKeys(s.Overrides) {
		if !slices.Contains(regions, r) {
			warnings = append(warnings, fmt.Sprintf("dropping override %q of region %q: region no longer configured", s.Overrides[r], r))
			delete(s.Overrides, r)
		}
	}
	for i := range s.Shifts {
		sh := &s.Shifts[i]
		if sh.State != ShiftRunning {
			continue
		}
		configured, ok := services[sh.Service]
		var why string
		switch {
		case !ok:
			why = fmt.Sprintf("service %q no longer configured", sh.Service)
		case !slices.Contains(configured, sh.Region):
			why = fmt.Sprintf("region %q no longer serves service %q", sh.Region, sh.Service)
		default:
			continue
		}
		warnings = append(warnings, fmt.Sprintf("aborting shift %s of %s/%s: %s", sh.ID, sh.Service, sh.Region, why))
		sh.State = ShiftAborted
		sh.Reason = why
	}
	return warnings
}
