package node

import (
	"errors"
	"fmt"
)

// Error kinds a caller (the admin API) maps to statuses.
var (
	ErrNotFound     = errors.New("not found")
	ErrInvalid      = errors.New("invalid")
	ErrConflict     = errors.New("conflict")
	ErrPrecondition = errors.New("precondition failed")
)

// opError carries a message for the operator and a kind to branch on.
type opError struct {
	kind error
	msg  string
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &opError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
