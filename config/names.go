package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// validDomain reports whether name (lower case, no final dot) is a host
// name: dot-separated labels of 1 to 63 letters, digits, '-' or '_', not
// starting or ending with '-', 253 characters at most.
func validDomain(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// validEmail reports whether s looks like local@domain: a local part
// without white space and a valid domain.
func validEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && !strings.ContainsAny(local, " \t\r\n@") && validDomain(dnsName(domain))
}

// inZone reports whether name is zone or a name below it.
func inZone(name, zone string) bool {
	return name == zone || strings.HasSuffix(name, "."+zone)
}

// validName reports whether s can name a region, service or token: 1 to 63
// letters, digits, '.', '_' or '-', starting with a letter or digit. Names
// appear in URLs, metric labels and the audit log.
func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if !alnum && (i == 0 || (c != '.' && c != '_' && c != '-')) {
			return false
		}
	}
	return true
}

const nameRule = "use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"

// checkListen returns why addr is not a host:port to listen on, or "". The
// host may be empty (every interface), an IP address or a host name; the
// port is 0 to 65535.
func checkListen(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if ae, ok := errors.AsType[*net.AddrError](err); ok {
			return ae.Err
		}
		return err.Error()
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("invalid port %q", port)
	}
	if host == "" {
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	if !validDomain(strings.ToLower(host)) {
		return fmt.Sprintf("invalid host %q", host)
	}
	return ""
}

// checkHTTPURL returns why raw is not an absolute http or https URL with a
// host, or "".
func checkHTTPURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			return ue.Err.Error()
		}
		return err.Error()
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "the scheme must be http or https"
	case u.Host == "" || u.Hostname() == "":
		return "the host is missing"
	case u.User != nil:
		return "credentials do not belong in the URL"
	case u.Port() != "":
		if p, err := strconv.ParseUint(u.Port(), 10, 16); err != nil || p == 0 {
			return fmt.Sprintf("invalid port %q", u.Port())
		}
	}
	return ""
}

// checkUnicast returns why a is not an address to answer with, or "".
func checkUnicast(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "missing address"
	case a.IsUnspecified():
		return fmt.Sprintf("%s is the unspecified address", a)
	case a.IsMulticast():
		return fmt.Sprintf("%s is a multicast address", a)
	}
	return ""
}
