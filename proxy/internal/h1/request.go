package h1

import "bytes"

// Method is a request method the fast path forwards.
type Method uint8

// The methods.
const (
	MethodOther Method = iota
	MethodGet
	MethodHead
	MethodPost
	MethodPut
	MethodDelete
	MethodOptions
	MethodPatch
)

// ParseMethod returns the method b names, MethodOther for any other.
func ParseMethod(b []byte) Method {
	switch string(b) {
	case "GET":
		return MethodGet
	case "HEAD":
		return MethodHead
	case "POST":
		return MethodPost
	case "PUT":
		return MethodPut
	case "DELETE":
		return MethodDelete
	case "OPTIONS":
		return MethodOptions
	case "PATCH":
		return MethodPatch
	}
	return MethodOther
}

// Idempotent reports whether the method is idempotent, as net/http's
// isIdempotent decides for these methods.
func (m Method) Idempotent() bool {
	switch m {
	case MethodGet, MethodHead, MethodOptions, MethodPut, MethodDelete:
		return true
	}
	return false
}

// methodNames are the methods as sent.
var methodNames = [...]string{
	MethodGet: "GET", MethodHead: "HEAD", MethodPost: "POST", MethodPut: "PUT",
	MethodDelete: "DELETE", MethodOptions: "OPTIONS", MethodPatch: "PATCH",
}

// Name is the method as sent ("" for MethodOther).
func (m Method) Name() string { return methodNames[m] }

// Request is a parsed request head. Its slices point into the buffer it
// was parsed from and are valid as long as that is.
type Request struct {
	Method               Method
	MethodName           []byte
	Target, Host, UA     []byte
	Fields               [MaxHeaders]Field
	N                    int // fields in Fields
	Conn                 ConnTokens
	CLen                 int64
	HasCL                bool
	TETrailers           bool // a TE header lists trailers
	IdemKey              bool // an Idempotency-Key or X-Idempotency-Key field
	XFF, XFHost, XFProto bool // X-Forwarded-For, -Host, -Proto fields
	Fwd                  bool // a Forwarded field
}

// Parse parses a complete request head (with its empty line). It returns
// false for anything the fast path leaves to net/http: another protocol
// or version, another method, an unusual target, an upgrade, an
// expectation, a request body that is not sized by Content-Length, or any
// header that does not parse cleanly.
func (rq *Request) Parse(head []byte) bool {
	rq.N, rq.Conn = 0, ConnTokens{}
	rq.Host, rq.UA, rq.CLen, rq.HasCL = nil, nil, 0, false
	rq.TETrailers, rq.IdemKey, rq.XFF, rq.XFHost, rq.XFProto, rq.Fwd = false, false, false, false, false, false

	line, rest := nextLine(head)
	sp := indexByte(line, ' ')
	if sp <= 0 {
		return false
	}
	rq.MethodName, line = line[:sp], line[sp+1:]
	if rq.Method = ParseMethod(rq.MethodName); rq.Method == MethodOther {
		return false
	}
	if sp = indexByte(line, ' '); sp <= 0 || string(line[sp+1:]) != "HTTP/1.1" {
		return false
	}
	if rq.Target = line[:sp]; !CleanTarget(rq.Target) {
		return false
	}
	for {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' || rq.N == MaxHeaders {
			return false // obsolete line folding, or too many fields
		}
		f, err := ParseField(line)
		if err != nil || !rq.note(&f) {
			return false
		}
		rq.Fields[rq.N] = f
		rq.N++
	}
	if rq.Host == nil {
		return false
	}
	for _, tok := range rq.Conn.Names[:rq.Conn.N] {
		switch HeaderKind(tok) {
		case KindOther, KindHop, KindConnection, KindIdemKey, KindContentType, KindContentEncoding, KindDate, KindRegion:
		default:
			return false // a Connection header naming what the proxy sets itself
		}
	}
	return true
}

// note takes what the proxy needs from one header field; false when the
// request is not for the fast path.
func (rq *Request) note(f *Field) bool {
	switch f.Kind {
	case KindHost:
		if rq.Host != nil || !ValidHost(f.Value) {
			return false
		}
		rq.Host = f.Value
	case KindContentLength:
		n, ok := ParseLength(f.Value)
		if rq.HasCL || !ok {
			return false
		}
		rq.CLen, rq.HasCL = n, true
	case KindTransferEncoding, KindUpgrade, KindExpect:
		return false
	case KindConnection:
		return rq.Conn.Add(f.Value)
	case KindTe:
		rq.TETrailers = rq.TETrailers || listsToken(f.Value, "trailers")
	case KindUserAgent:
		if rq.UA == nil {
			rq.UA = f.Value
		}
	case KindIdemKey:
		rq.IdemKey = true
	case KindXFF:
		rq.XFF = true
	case KindXFHost:
		rq.XFHost = true
	case KindXFProto:
		rq.XFProto = true
	case KindForwarded:
		rq.Fwd = true
	}
	return true
}

// listsToken reports whether a comma-separated value holds token (lower
// case), ignoring case.
func listsToken(v []byte, token string) bool {
	for len(v) > 0 {
		var tok []byte
		if i := indexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		if EqualFold(TrimOWS(tok), token) {
			return true
		}
	}
	return false
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// AppendEndToEnd appends the request's fields that go upstream as they
// are, the way ReverseProxy and http.Transport would write them: all but
// Host, Content-Length, User-Agent, the hop-by-hop fields, the fields the
// Connection header lists and the forwarding fields (which the caller
// writes), then "Te: trailers" when the client asked for trailers.
func (rq *Request) AppendEndToEnd(b []byte) []byte {
	for i := range rq.Fields[:rq.N] {
		f := &rq.Fields[i]
		switch f.Kind {
		case KindHost, KindContentLength, KindConnection, KindHop, KindTe, KindTrailer, KindUserAgent,
			KindXFF, KindXFHost, KindXFProto, KindForwarded:
			continue
		}
		if rq.Conn.N > 0 && rq.Conn.Lists(f.Name) {
			continue
		}
		b = append(b, f.Name...)
		b = append(b, ": "...)
		b = append(b, f.Value...)
		b = append(b, "\r\n"...)
	}
	if rq.TETrailers {
		b = append(b, "Te: trailers\r\n"...)
	}
	return b
}

// AppendValues appends the values of the fields of kind k, joined by sep.
func (rq *Request) AppendValues(b []byte, k Kind, sep string) []byte {
	first := true
	for i := range rq.Fields[:rq.N] {
		if f := &rq.Fields[i]; f.Kind == k {
			if !first {
				b = append(b, sep...)
			}
			b = append(b, f.Value...)
			first = false
		}
	}
	return b
}

// AppendFields appends the fields of kind k as they are, under name.
func (rq *Request) AppendFields(b []byte, k Kind, name string) []byte {
	for i := range rq.Fields[:rq.N] {
		if f := &rq.Fields[i]; f.Kind == k {
			b = append(b, name...)
			b = append(b, ": "...)
			b = append(b, f.Value...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// Values appends the values of the fields of kind k, as strings.
func (rq *Request) Values(dst []string, k Kind) []string {
	for i := range rq.Fields[:rq.N] {
		if f := &rq.Fields[i]; f.Kind == k {
			dst = append(dst, string(f.Value))
		}
	}
	return dst
}

// Framing is what ScreenRequest found wrong with a request head.
type Framing uint8

// The framings ScreenRequest tells apart.
const (
	FramingOK       Framing = iota
	FramingCLAndTE          // both Content-Length and Transfer-Encoding
	FramingTE10             // Transfer-Encoding in an HTTP/1.0 request
	FramingHostDiff         // an absolute-form target naming another host than Host
)

func (f Framing) String() string {
	switch f {
	case FramingCLAndTE:
		return "both Content-Length and Transfer-Encoding"
	case FramingTE10:
		return "Transfer-Encoding in an HTTP/1.0 request"
	case FramingHostDiff:
		return "the request target names another host than Host"
	}
	return "ok"
}

// ScreenRequest looks at a complete request head the fast path does not
// take itself for framing a proxy must refuse (RFC 9112 §6.1, §3.2.2):
// net/http frames such a request by one of its fields and keeps the
// connection open, and a front end that frames it by the other would
// smuggle the rest of the body in as a request of its own. Lines are read
// as net/http's textproto reader reads them (bare LF ends, folded lines).
func ScreenRequest(head []byte) Framing {
	var line []byte
	line, head = splitLine(head)
	var target, proto []byte
	if i, j := bytes.IndexByte(line, ' '), bytes.LastIndexByte(line, ' '); i < j {
		target, proto = line[i+1:j], line[j+1:]
	}
	var hasCL, hasTE bool
	var host []byte
	hosts := 0
	for len(head) > 0 {
		line, head = splitLine(head)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // a folded value: its field was counted
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch HeaderKind(name) {
		case KindContentLength:
			hasCL = true
		case KindTransferEncoding:
			hasTE = true
		case KindHost:
			host = TrimOWS(value)
			hosts++
		}
	}
	switch {
	case hasTE && hasCL:
		return FramingCLAndTE
	case hasTE && string(proto) == "HTTP/1.0":
		return FramingTE10
	case hosts == 1 && !bytes.EqualFold(absoluteHost(target), host) && absoluteHost(target) != nil:
		return FramingHostDiff
	}
	return FramingOK
}

// absoluteHost is the authority of an absolute-form request target, nil
// for any other form.
func absoluteHost(target []byte) []byte {
	var rest []byte
	switch {
	case HasPrefixFold(target, "http://"):
		rest = target[len("http://"):]
	case HasPrefixFold(target, "https://"):
		rest = target[len("https://"):]
	default:
		return nil
	}
	if i := bytes.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := bytes.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:] // userinfo is no part of the host
	}
	return rest
}
