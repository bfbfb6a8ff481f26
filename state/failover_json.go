package state

import (
	"encoding/json"
	"time"
)

// As for shifts, a failover's Hold and a drill's Duration are Go duration
// strings in JSON; a number is read as nanoseconds.
type (
	failoverAlias Failover
	drillAlias    Drill
)

type failoverJSON struct {
	*failoverAlias
	Hold duration `json:"hold"`
}

type drillJSON struct {
	*drillAlias
	Duration duration `json:"duration"`
}

// MarshalJSON writes Hold as a duration string.
func (f Failover) MarshalJSON() ([]byte, error) {
	return json.Marshal(failoverJSON{failoverAlias: (*failoverAlias)(&f), Hold: duration(f.Hold)})
}

// UnmarshalJSON reads Hold as a duration string or nanoseconds.
func (f *Failover) UnmarshalJSON(b []byte) error {
	j := failoverJSON{failoverAlias: (*failoverAlias)(f), Hold: duration(f.Hold)}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	f.Hold = time.Duration(j.Hold)
	return nil
}

// MarshalJSON writes Duration as a duration string.
func (d Drill) MarshalJSON() ([]byte, error) {
	return json.Marshal(drillJSON{drillAlias: (*drillAlias)(&d), Duration: duration(d.Duration)})
}

// UnmarshalJSON reads Duration as a duration string or nanoseconds.
func (d *Drill) UnmarshalJSON(b []byte) error {
	j := drillJSON{drillAlias: (*drillAlias)(d), Duration: duration(d.Duration)}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	d.Duration = time.Duration(j.Duration)
	return nil
}
