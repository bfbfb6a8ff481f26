// Package certs provides the TLS configuration of meridian's https
// listeners: static certificate and key pairs from tls.certificates, picked
// by SNI with the first as the default, and certificates obtained and renewed
// automatically over ACME (tls.acme) for the hostnames of proxy-mode
// services. It sets the protocol policy (TLS 1.3 and 1.2, AEAD suites),
// serves an ECDSA or an RSA certificate for one name by what the client
// supports, and staples OCSP responses to static certificates.
//
// ACME challenges are answered by meridian itself: DNS-01 through a
// TXTPublisher (the node's own authoritative zones, in-process), HTTP-01
// through HTTPChallengeHandler mounted on the http listeners. Certificates and
// the ACME account live in a certmagic file storage directory.
//
// In a fleet (state.backend etcd) a Fleet shares them through etcd instead:
// EtcdStorage keeps certificates, accounts and locks (a lock is bound to its
// holder's lease), EtcdTXT publishes DNS-01 records so every node's DNS
// server answers them, and TicketKeys shares rotated TLS session ticket
// keys, so one certificate is obtained per fleet and a session resumes on
// any node.
//
// It owns certificate selection and the certificate lifecycle, nothing else:
// it serves no traffic (the HTTP-01 solver opens a listener of its own only
// when nothing listens on the configured http port), reads no flags or
// environment and does not decide which hostnames need certificates (the
// caller passes them in).
package certs
