package dnsserver

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/miekg/dns"
)

// Ask answers m in-process as if it came over TCP from src, through the
// same path as every query (TCP: never truncated or rate limited), and is
// counted like one. It is for the admin API's explain, which shows the
// records a client would get; it allocates.
func (s *Server) Ask(m *dns.Msg, src netip.Addr) (*dns.Msg, error) {
	q, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing query: %w", err)
	}
	b := s.answer(q, src, true, make([]byte, 0, dns.MaxMsgSize))
	if b == nil {
		return nil, errors.New("the query was not answered")
	}
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		return nil, fmt.Errorf("unpacking answer: %w", err)
	}
	return r, nil
}
