// Package client is the Go client of stcache, a key-value cache replicated
// with Raft (github.com/stcache/stcache).
//
// A Client is given the HTTP addresses of some or all members and finds the
// rest itself:
//
//	c, err := client.New([]string{"10.0.0.1:6000", "10.0.0.2:6000", "10.0.0.3:6000"},
//		client.WithCA("certs/ca.pem"), client.WithTokenFile("token"))
//	...
//	index, err := c.Set(ctx, "greeting", "hello")
//	v, err := c.GetStrong(ctx, "greeting")
//
// # Where requests go
//
// Writes (Set, SetTTL, Delete), strong reads (GetStrong) and membership
// changes (Join, Leave) go to the leader. The client remembers the member
// that last served one; when it knows none, it first asks the members'
// /status which one leads (a member whose /status does not answer within
// the read timeout is left out, so a write is not handed to a frozen node,
// where its outcome would be in doubt). A follower's refusal (307) names
// the leader and the client follows it, but only to an address it knows as
// a member: one given
// to New, or listed in a member's /status (servers[].http). The token is
// sent to those addresses only, and a redirect anywhere else ends the call
// with ErrUntrustedRedirect. While the cluster has no leader (503 "write
// method not allowed", e.g. during an election or without a quorum) the
// client asks the other members, then waits (backoff with jitter, at least
// the Retry-After) and tries again, until the call's context ends
// (ErrNoLeader). A member that refuses the connection is skipped for
// another one.
//
// Stale reads (Get) go to one member, the first given that answers, and
// move to the next when it fails or takes longer than the read timeout
// (WithReadTimeout), so a dead or frozen member costs one timeout.
//
// # Never a silent double write
//
// A write is never sent twice behind the caller's back. Writes go as POST
// (net/http resends a GET whose keep-alive connection broke, even after
// sending it; see the project's README), and once a write may have reached
// a member — its answer was a 5xx "internal error", or the connection broke
// or timed out after the request was handed to it, or the call's context
// ended while it was in flight — the call ends with an
// error for which errors.Is(err, ErrUnknownOutcome) holds: the write may or
// may not have been applied, and only the caller knows whether to check or
// retry. Every other error of a write means nothing was executed: a refusal
// the cluster guarantees it did not execute (307, 503, 401, 403, 413, 400,
// 507), or a request that never left (a refused connection).
//
// # Errors
//
// Every error is an *Error holding the member, the status code and body of
// its answer, and one of the Err… kinds, for errors.Is: ErrNotFound (a get
// of an absent key), ErrUnknownOutcome, ErrNoLeader, ErrUnavailable,
// ErrNotMember, ErrUnauthorized, ErrForbidden, ErrCacheFull, ErrTooLarge,
// ErrBadRequest, ErrConflict, ErrPeerUnreachable, ErrUntrustedRedirect.
// When the context ended, errors.Is(err, context.DeadlineExceeded) (or
// context.Canceled) holds as well.
//
// Every call takes a context.Context: it bounds the whole call, waits
// included. Each attempt inside it is bounded too (WithReadTimeout,
// WithWriteTimeout, WithDialTimeout).
package client
