package h2

import (
	"encoding/binary"
	"strconv"

	"golang.org/x/net/http2"
)

// Frame encoding. Frames are appended to byte slices: the connection's
// write buffer, or a stream's until it is handed over.

const frameHeaderLen = 9

// appendFrameHeader appends a frame header.
func appendFrameHeader(b []byte, length int, t http2.FrameType, flags http2.Flags, id uint32) []byte {
	//nolint:gosec // G115: the bytes of a 24-bit length and a 31-bit id
	return append(b, byte(length>>16), byte(length>>8), byte(length), byte(t), byte(flags),
		byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id))
}

func appendRSTStream(b []byte, id uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 4, http2.FrameRSTStream, 0, id)
	return binary.BigEndian.AppendUint32(b, uint32(code))
}

func appendWindowUpdate(b []byte, id, inc uint32) []byte {
	b = appendFrameHeader(b, 4, http2.FrameWindowUpdate, 0, id)
	return binary.BigEndian.AppendUint32(b, inc&0x7fffffff)
}

func appendGoAway(b []byte, last uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 8, http2.FrameGoAway, 0, 0)
	b = binary.BigEndian.AppendUint32(b, last&0x7fffffff)
	return binary.BigEndian.AppendUint32(b, uint32(code))
}

func appendPingAck(b []byte, data [8]byte) []byte {
	b = appendFrameHeader(b, 8, http2.FramePing, http2.FlagPingAck, 0)
	return append(b, data[:]...)
}

// pingData is what the server's PINGs carry.
var pingData = [8]byte{'m', 'e', 'r', 'i', 'd', 'i', 'a', 'n'}

func appendPing(b []byte) []byte {
	b = appendFrameHeader(b, 8, http2.FramePing, 0, 0)
	return append(b, pingData[:]...)
}

func appendSettingsAck(b []byte) []byte {
	return appendFrameHeader(b, 0, http2.FrameSettings, http2.FlagSettingsAck, 0)
}

func appendSettings(b []byte, s ...http2.Setting) []byte {
	b = appendFrameHeader(b, 6*len(s), http2.FrameSettings, 0, 0)
	for _, x := range s {
		b = binary.BigEndian.AppendUint16(b, uint16(x.ID))
		b = binary.BigEndian.AppendUint32(b, x.Val)
	}
	return b
}

// appendHeaderBlock appends block as a HEADERS frame and as many
// CONTINUATION frames as maxFrame requires.
func appendHeaderBlock(b []byte, id uint32, block []byte, endStream bool, maxFrame int) []byte {
	flags := http2.Flags(0)
	if endStream {
		flags |= http2.FlagHeadersEndStream
	}
	t := http2.FrameHeaders
	for {
		n := min(len(block), maxFrame)
		f := flags
		if n == len(block) {
			f |= http2.FlagHeadersEndHeaders
		}
		b = appendFrameHeader(b, n, t, f, id)
		b = append(b, block[:n]...)
		block = block[n:]
		if len(block) == 0 {
			return b
		}
		t, flags = http2.FrameContinuation, 0
	}
}

// appendData appends one DATA frame.
func appendData(b []byte, id uint32, p []byte, endStream bool) []byte {
	flags := http2.Flags(0)
	if endStream {
		flags = http2.FlagDataEndStream
	}
	b = appendFrameHeader(b, len(p), http2.FrameData, flags, id)
	return append(b, p...)
}

// HPACK encoding without the dynamic table: every field is a literal
// without indexing, its name from the static table where it is there,
// strings without Huffman coding. The encoder keeps no state, so a
// stream encodes its fields on its own goroutine, and the peer's table
// size does not matter (but for the size update after it changes).

// appendHpackInt appends v with an n-bit prefix whose high bits are first.
func appendHpackInt(b []byte, first byte, n uint, v uint64) []byte {
	k := uint64(1)<<n - 1
	if v < k {
		return append(b, first|byte(v)) //nolint:gosec // G115: v < 2^n ≤ 128
	}
	b = append(b, first|byte(k)) //nolint:gosec // G115: k < 128
	v -= k
	for v >= 128 {
		b = append(b, byte(v&0x7f|0x80)) //nolint:gosec // G115: masked to 7 bits
		v >>= 7
	}
	return append(b, byte(v)) //nolint:gosec // G115: v < 128
}

// text is what header names and values are given as.
type text interface{ ~string | ~[]byte }

func appendHpackString[T text](b []byte, s T) []byte {
	b = appendHpackInt(b, 0, 7, uint64(len(s)))
	return append(b, s...)
}

// appendHpackLowerString appends s lowercased.
func appendHpackLowerString[T text](b []byte, s T) []byte {
	b = appendHpackInt(b, 0, 7, uint64(len(s)))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// appendStatus appends the :status field.
func appendStatus(b []byte, code int) []byte {
	switch code {
	case 200:
		return append(b, 0x88)
	case 204:
		return append(b, 0x89)
	case 206:
		return append(b, 0x8a)
	case 304:
		return append(b, 0x8b)
	case 400:
		return append(b, 0x8c)
	case 404:
		return append(b, 0x8d)
	case 500:
		return append(b, 0x8e)
	}
	b = append(b, 0x08, 3) // literal, name :status, a 3-byte value
	if code < 100 || code > 999 {
		code = 500
	}
	return strconv.AppendInt(b, int64(code), 10)
}

// appendField appends a header field; name is lowercased on the way.
func appendField[N, V text](b []byte, name N, value V) []byte {
	if i := staticName(name); i > 0 {
		b = appendHpackInt(b, 0, 4, uint64(i))
	} else {
		b = append(b, 0)
		b = appendHpackLowerString(b, name)
	}
	return appendHpackString(b, value)
}

// staticName is the index of name (compared without case) in the static
// table, or 0.
func staticName[T text](name T) int {
	if len(name) == 0 || len(name) > 27 {
		return 0
	}
	var low [27]byte
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		low[i] = c
	}
	return staticIndex[string(low[:len(name)])]
}

// staticIndex maps the names of the static table (RFC 7541 Appendix A)
// that responses carry to their first index.
var staticIndex = map[string]int{
	"accept-charset": 15, "accept-encoding": 16, "accept-language": 17,
	"accept-ranges": 18, "accept": 19, "access-control-allow-origin": 20,
	"age": 21, "allow": 22, "authorization": 23, "cache-control": 24,
	"content-disposition": 25, "content-encoding": 26, "content-language": 27,
	"content-length": 28, "content-location": 29, "content-range": 30,
	"content-type": 31, "cookie": 32, "date": 33, "etag": 34, "expect": 35,
	"expires": 36, "from": 37, "host": 38, "if-match": 39,
	"if-modified-since": 40, "if-none-match": 41, "if-range": 42,
	"if-unmodified-since": 43, "last-modified": 44, "link": 45,
	"location": 46, "max-forwards": 47, "proxy-authenticate": 48,
	"proxy-authorization": 49, "range": 50, "referer": 51, "refresh": 52,
	"retry-after": 53, "server": 54, "set-cookie": 55,
	"strict-transport-security": 56, "transfer-encoding": 57,
	"user-agent": 58, "vary": 59, "via": 60, "www-authenticate": 61,
}
