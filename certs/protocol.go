package certs

import "crypto/tls"

// The protocol policy of the https listeners: TLS 1.3 and 1.2, as
// Mozilla's "intermediate" server profile has it.
const minVersion = tls.VersionTLS12

// cipherSuites are the TLS 1.2 suites offered: forward-secret ECDHE key
// exchange with an AEAD (AES-GCM or ChaCha20-Poly1305), for ECDSA and RSA
// certificates. No RSA key exchange, no CBC, no 3DES or RC4. TLS 1.3
// suites are not configurable in Go; all three of them are AEADs.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// curvePreferences are the key exchange groups: the post-quantum hybrid
// X25519MLKEM768 (TLS 1.3 only), X25519 and P-256. Go applies its own
// order of preference among them.
var curvePreferences = []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256}

// applyProtocol sets the protocol policy on cfg.
func applyProtocol(cfg *tls.Config) {
	cfg.MinVersion = minVersion
	cfg.CipherSuites = cipherSuites
	cfg.CurvePreferences = curvePreferences
}
