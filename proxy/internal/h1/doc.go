// Package h1 holds every rule about HTTP/1.1 bytes on the wire that the
// proxy's fast path applies: where a message head ends (CRLF or bare LF
// line ends), how a header field parses and which names the proxy treats
// specially, the tokens of a Connection header, Content-Length and chunk
// sizes, which request targets and Host values are clean, which request
// heads the fast path takes and which framing a proxy must refuse, how a
// response head parses and how its body is delimited, the checks on chunk
// lines and trailers, and how status lines, Date and header fields are
// written.
//
// It is a codec and nothing more: pure functions and value types over
// byte slices, with no sockets, no pools and no proxy state. Parsed
// messages point into the caller's buffer, and nothing here allocates on
// the fast path (a parsed Response grows its field slice once and is
// reused). Its parsers are at least as strict as net/http's and are
// fuzzed against it (FuzzRequestHead, FuzzResponseHead); the proxy's own
// differential fuzzing of whole exchanges stays with the proxy.
package h1
