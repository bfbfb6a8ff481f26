// Package admin serves meridian's admin API: JSON over HTTP under /v1,
// bearer tokens with read and write roles, request validation, and the
// mapping of the node's operations and their errors to HTTP statuses. Every
// change it accepts is made through the node, which validates it, persists
// it with its audit entry and publishes it before the answer is written.
//
// It owns request shapes, authentication and the error format
// ({"error": "message"}, rendered by one function). It must not keep or
// change operator state itself, keep anything between requests, or serve
// /metrics and the health endpoints, which the node serves on the same
// listener.
package admin
