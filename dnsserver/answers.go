package dnsserver

import dto "github.com/prometheus/client_model/go"

// Answers returns how many steered answers this server gave for service
// with region first, since it started. A drill reads it to see when a
// region stopped being answered.
func (s *Server) Answers(service, region string) uint64 {
	if s == nil || s.m == nil {
		return 0
	}
	c, err := s.m.answers.GetMetricWithLabelValues(service, region)
	if err != nil {
		return 0
	}
	var m dto.Metric
	if c.Write(&m) != nil || m.Counter == nil {
		return 0
	}
	return uint64(m.Counter.GetValue())
}
