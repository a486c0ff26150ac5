package main

// Who may send a request: a web browser reaches 127.0.0.1 too, so any page
// its user visits could otherwise drive a local cluster. Two checks, both
// decided here and applied by http.go:
//
//   - the Host header must name this node or a member (or be an IP literal or
//     localhost): a name that an attacker's DNS points at 127.0.0.1 (DNS
//     rebinding) carries the attacker's host name, and is refused;
//   - a state-changing request that a browser marks as cross-site, or whose
//     Origin is not a member's page (or one the operator allowed), is refused.
//
// Programs (curl, Go clients) send neither Origin nor Sec-Fetch-Site and are
// not affected; neither are the pages that members serve.

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// originPolicy holds what the checks compare against. members is asked only
// when the cheap answers (an IP literal, localhost, this node's own names) do
// not decide, so the hot path never reaches Raft.
type originPolicy struct {
	ownHosts map[string]bool // lower-case host names given to this node's flags
	allowed  map[string]bool // -allow-origin, normalised by parseOrigin
	members  func() []server // the current configuration with HTTP addresses
}

// newOriginPolicy builds the policy from this node's own addresses (any of
// -http, -http-advertise, -raft, -raft-advertise) and -allow-origin's list.
func newOriginPolicy(ownAddrs []string, allowOrigins []string, members func() []server) *originPolicy {
	p := &originPolicy{ownHosts: map[string]bool{}, allowed: map[string]bool{}, members: members}
	for _, a := range ownAddrs {
		if h := hostOf(a); h != "" {
			p.ownHosts[strings.ToLower(h)] = true
		}
	}
	for _, o := range allowOrigins {
		p.allowed[o] = true
	}
	return p
}

// parseAllowOrigins reads -allow-origin: comma-separated origins such as
// http://127.0.0.1:8080 (scheme and host, an optional port, nothing else).
func parseAllowOrigins(s string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		norm, err := parseOrigin(o)
		if err != nil {
			return nil, err
		}
		out = append(out, norm)
	}
	return out, nil
}

func parseOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return "", fmt.Errorf("%q is not an origin: want http(s)://host[:port]", o)
	}
	return u.Scheme + "://" + strings.ToLower(u.Host), nil
}

// hostOf is the host part of host:port (or of a bare host), without the
// brackets of an IPv6 literal.
func hostOf(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// knownHost reports whether a request's Host header may reach this node. An
// empty Host (HTTP/1.0) passes: no browser sends one.
func (p *originPolicy) knownHost(hostport string) bool {
	if hostport == "" {
		return true
	}
	host := hostOf(hostport)
	if _, err := netip.ParseAddr(host); err == nil {
		return true // an attacker's page cannot make the browser send a name it does not own as an IP
	}
	host = strings.ToLower(host)
	if host == "localhost" || p.ownHosts[host] {
		return true
	}
	for _, m := range p.members() {
		if strings.EqualFold(hostOf(m.HTTP), host) || strings.EqualFold(hostOf(m.Address), host) {
			return true
		}
	}
	return false
}

// allowedOrigin reports whether a page from origin may act on this node: a
// member's own page, a page served under this request's Host, or one of
// -allow-origin. "null" (a sandboxed frame, a file, a redirect across
// origins) is never allowed.
func (p *originPolicy) allowedOrigin(origin, host string) bool {
	o := strings.ToLower(origin)
	scheme, hostport, ok := strings.Cut(o, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return false
	}
	if p.allowed[o] || (host != "" && hostport == strings.ToLower(host)) {
		return true
	}
	for _, m := range p.members() {
		if m.HTTP != "" && hostport == strings.ToLower(m.HTTP) {
			return true
		}
	}
	return false
}

// crossSite reports whether a browser sent this request on behalf of a page
// that may not change state here. Requests without Origin and
// Sec-Fetch-Site (programs) are not cross-site.
func (p *originPolicy) crossSite(h headerGetter, host string) bool {
	if h.Get("Sec-Fetch-Site") == "cross-site" {
		return true
	}
	origin := h.Get("Origin")
	return origin != "" && !p.allowedOrigin(origin, host)
}

// headerGetter is http.Header's Get, so the checks can be tested on maps.
type headerGetter interface{ Get(string) string }
