package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// class is the bounded outcome of a probe, for the checks metric.
type class uint8

const (
	classOK class = iota
	classFail
	classTimeout
)

var classNames = [...]string{"ok", "fail", "timeout"}

func (c class) String() string { return classNames[c] }

// maxResultText bounds the result text kept for logs and status.
const maxResultText = 160

// result is one probe's outcome.
type result struct {
	class class
	rtt   time.Duration // valid when class == classOK
	text  string        // "ok", "status 503", "timeout", "connection refused", …
}

func (r result) pass() bool { return r.class == classOK }

func okResult(rtt time.Duration) result { return result{class: classOK, rtt: rtt, text: "ok"} }

func statusResult(code int) result {
	return result{class: classFail, text: "status " + strconv.Itoa(code)}
}

// errorResult describes a failed probe in a few words.
func errorResult(err error) result {
	text, timeout := describe(err)
	if len(text) > maxResultText {
		text = text[:maxResultText]
	}
	if timeout {
		return result{class: classTimeout, text: text}
	}
	return result{class: classFail, text: text}
}

// describe names err as an operator would: "timeout", "connection refused",
// "tls: …", "dns: …"; it reports whether err is a timeout.
func describe(err error) (string, bool) {
	var (
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		uaErr   x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
		netErr  net.Error
	)
	switch {
	case errors.As(err, &dnsErr):
		if dnsErr.IsTimeout {
			return "timeout", true
		}
		return "dns: " + dnsErr.Err, false
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout", true
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout", true
	case errors.As(err, &certErr):
		return "tls: " + certErr.Err.Error(), false
	case errors.As(err, &uaErr), errors.As(err, &hostErr), errors.As(err, &invErr):
		return "tls: " + innermost(err), false
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", false
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset", false
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable", false
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable", false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed", false
	}
	return innermost(err), false
}

// innermost is the message of the deepest error of err's single-wrap
// chain, without the "Get URL:" and "dial tcp ADDR:" prefixes of the outer
// ones.
func innermost(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return strings.TrimSpace(err.Error())
		}
		err = next
	}
}
