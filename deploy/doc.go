// Package deploy holds what operators install beside the binary: the
// Grafana dashboard (grafana/meridian.json), the Prometheus alert rules
// and their unit tests (prometheus/), and the systemd unit (systemd/).
// Its tests hold those files to the metrics a running node exports.
//
// It must not hold code the binary runs: only the list of metrics that
// come with optional features, which the files may name before a node
// exports them.
package deploy

// FeatureMetrics are the SPEC section 7 metrics a node exports only when a
// feature is configured (or, for some, once the feature is built): the
// dashboard and the alerts may query them; every other name they query
// must be exported by a plain node. The value says what brings it.
var FeatureMetrics = map[string]string{
	"meridian_dns_rrl_total":              "DNS response rate limiting",
	"meridian_state_backend_up":           "a state backend (state.backend: etcd)",
	"meridian_fleet_nodes":                "a fleet (state.backend: etcd)",
	"meridian_region_up_fleet":            "a fleet (state.backend: etcd)",
	"meridian_bgp_peer_up":                "anycast (bgp:)",
	"meridian_bgp_announced":              "anycast (bgp:)",
	"meridian_region_replica_lag_seconds": "replica lag polling (replication.lag_url)",
	"meridian_failover_rto_seconds":       "a completed region failover",
	"meridian_failover_rpo_seconds":       "a completed region failover",
}
