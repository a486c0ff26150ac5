package client

import (
	"errors"
	"fmt"
	"strings"
)

// The kinds of failure a call can end with. Test them with errors.Is; the
// error itself is an *Error that says which member answered what.
//
// Only ErrUnknownOutcome leaves a write in doubt. Every other error from
// Set, SetTTL, Delete, Join or Leave means the cluster executed nothing:
// the request was refused, or never reached a member.
var (
	// ErrUnknownOutcome: the write may have reached a member, but its answer
	// did not come back (a 5xx "internal error", a lost connection, a
	// timeout or the call's context ending after the request was handed to
	// the connection). It may or may not have been applied, now or
	// later. The client never resends it: read the key back, or write again
	// if a second application is harmless.
	ErrUnknownOutcome = errors.New("outcome unknown: the write may or may not have been applied")

	// ErrNotFound: a get of a key that is absent (or expired).
	ErrNotFound = errors.New("key not found")

	// ErrNoLeader: the context ended while the cluster had no leader (the
	// last attempts were refused with 503 "write method not allowed", or
	// redirected to a leader that could not be reached: an election, or no
	// quorum). Nothing was executed.
	ErrNoLeader = errors.New("no leader")

	// ErrUnavailable: the context ended before any member could be reached
	// (connections refused, or reads timed out everywhere). Nothing was
	// executed.
	ErrUnavailable = errors.New("no member reachable")

	// ErrNotMember: every member asked answered 503 "not a member" (it was
	// removed from the cluster). Nothing was executed.
	ErrNotMember = errors.New("not a member")

	// ErrUnauthorized: 401, the token is missing or wrong.
	ErrUnauthorized = errors.New("unauthorized")

	// ErrForbidden: 403, the member refused the request's Host (a name it
	// does not know) or its origin.
	ErrForbidden = errors.New("forbidden")

	// ErrCacheFull: 507, the write would take the map past the cluster's
	// -max-memory. Nothing was executed; deletes are always accepted.
	ErrCacheFull = errors.New("cache full")

	// ErrTooLarge: 413, the key is over 1 KiB or the value over 1 MiB.
	ErrTooLarge = errors.New("too large")

	// ErrBadRequest: 400, e.g. an empty key or value, invalid UTF-8, a key
	// starting with NUL, or a TTL under one second.
	ErrBadRequest = errors.New("bad request")

	// ErrConflict: 409 from Join (a fresh join naming the leader, or another
	// HTTP address for a member). Nothing was changed.
	ErrConflict = errors.New("conflict")

	// ErrPeerUnreachable: 502 from Join: the leader could not reach the
	// joining node's Raft address (or it failed the TLS check). The
	// configuration is untouched.
	ErrPeerUnreachable = errors.New("joining node unreachable")

	// ErrUntrustedRedirect: a member pointed the client at an address that
	// is not a member it knows (neither given to New nor listed in a
	// member's /status). The client does not follow it, so the token never
	// goes there. Nothing was executed.
	ErrUntrustedRedirect = errors.New("redirected to an address that is not a known member")
)

// Error is what every failed call returns.
type Error struct {
	Op     string // "set", "get", "strong get", "delete", "join", "leave", "status"
	Addr   string // the member that answered last, or that could not be reached
	Status int    // its HTTP status code; 0 when there was no answer
	Body   string // the body of its answer, trimmed
	Kind   error  // one of the Err… values above, or nil for anything else
	Err    error  // the underlying failure (transport, context), or nil
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("stcache client: ")
	b.WriteString(e.Op)
	if e.Addr != "" {
		fmt.Fprintf(&b, " via %s", e.Addr)
	}
	if e.Kind != nil {
		b.WriteString(": ")
		b.WriteString(e.Kind.Error())
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": %d", e.Status)
		if e.Body != "" {
			fmt.Fprintf(&b, " %q", e.Body)
		}
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap gives both the kind and the cause to errors.Is and errors.As:
// errors.Is(err, ErrNoLeader) and errors.Is(err, context.DeadlineExceeded)
// can both hold.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}
