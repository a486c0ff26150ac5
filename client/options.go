package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// An Option configures a Client in New.
type Option func(*settings) error

// settings is what the options set, before New builds the Client.
type settings struct {
	token          string
	tlsConfig      *tls.Config // from WithTLSConfig, or built from the files
	caFile         string
	certFile       string
	keyFile        string
	tls            bool
	readTimeout    time.Duration
	writeTimeout   time.Duration
	dialTimeout    time.Duration
	backoffMin     time.Duration
	backoffMax     time.Duration
	maxIdlePerHost int
}

// Defaults. A read attempt is short so that a frozen member costs little
// before the next one is asked; a write attempt outlasts the daemon's own
// bound (it answers 500 when an entry is not committed within 10 s, or
// within two such waits when queued), so that a slow commit is reported
// by the cluster rather than cut short as an unknown outcome here.
const (
	defaultReadTimeout    = 2 * time.Second
	defaultWriteTimeout   = 25 * time.Second
	defaultDialTimeout    = 2 * time.Second
	defaultBackoffMin     = 50 * time.Millisecond
	defaultBackoffMax     = 2 * time.Second
	defaultMaxIdlePerHost = 64
)

func defaults() settings {
	return settings{
		readTimeout:    defaultReadTimeout,
		writeTimeout:   defaultWriteTimeout,
		dialTimeout:    defaultDialTimeout,
		backoffMin:     defaultBackoffMin,
		backoffMax:     defaultBackoffMax,
		maxIdlePerHost: defaultMaxIdlePerHost,
	}
}

// WithToken sends "Authorization: Bearer <token>" with every request that
// reads or changes data or membership, to members only (the nodes'
// -token-file). Surrounding white space is trimmed, as the daemon does.
func WithToken(token string) Option {
	return func(s *settings) error {
		t := strings.TrimSpace(token)
		if t == "" {
			return errors.New("WithToken: empty token")
		}
		s.token = t
		return nil
	}
}

// WithTokenFile reads the token from a file, such as the nodes'
// -token-file.
func WithTokenFile(path string) Option {
	return func(s *settings) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("WithTokenFile: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return fmt.Errorf("WithTokenFile %s: the file holds no token", path)
		}
		s.token = t
		return nil
	}
}

// WithCA speaks HTTPS to the members and trusts the CA in caFile (PEM, as
// `make certs` writes certs/ca.pem) instead of the system's roots.
func WithCA(caFile string) Option {
	return func(s *settings) error {
		s.tls, s.caFile = true, caFile
		return nil
	}
}

// WithClientCert presents a client certificate (PEM files, as `make certs`
// writes certs/<host>.pem and certs/<host>-key.pem) over HTTPS. stcached
// does not ask HTTP clients for one (the token authenticates them); this is
// for a TLS-terminating proxy in front of the cluster that does.
func WithClientCert(certFile, keyFile string) Option {
	return func(s *settings) error {
		s.tls, s.certFile, s.keyFile = true, certFile, keyFile
		return nil
	}
}

// WithTLSConfig speaks HTTPS with the given configuration (cloned), for
// anything WithCA and WithClientCert do not cover. Given together with
// them, their files are added to it.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(s *settings) error {
		if cfg == nil {
			return errors.New("WithTLSConfig: nil config")
		}
		s.tls, s.tlsConfig = true, cfg.Clone()
		return nil
	}
}

// WithReadTimeout bounds each attempt of a get, a strong get or a status
// (default 2 s). An attempt that times out is tried on another member, so
// this is how long a frozen member can hold up a read.
func WithReadTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d <= 0 {
			return errors.New("WithReadTimeout: must be positive")
		}
		s.readTimeout = d
		return nil
	}
}

// WithWriteTimeout bounds each attempt of a set, a delete, a join or a
// leave (default 25 s). A write that times out after it was sent ends the
// call with ErrUnknownOutcome; it is not resent.
func WithWriteTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d <= 0 {
			return errors.New("WithWriteTimeout: must be positive")
		}
		s.writeTimeout = d
		return nil
	}
}

// WithDialTimeout bounds each connection attempt (default 2 s): how long an
// unreachable host holds up a call before the next member is asked.
func WithDialTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d <= 0 {
			return errors.New("WithDialTimeout: must be positive")
		}
		s.dialTimeout = d
		return nil
	}
}

// WithBackoff sets the waits between rounds of attempts while no member can
// serve a call (no leader, every member unreachable): they start at first,
// double up to most, and are jittered; a Retry-After from the cluster is
// waited at least. Defaults: 50 ms and 2 s.
func WithBackoff(first, most time.Duration) Option {
	return func(s *settings) error {
		if first <= 0 || most < first {
			return errors.New("WithBackoff: want 0 < first <= most")
		}
		s.backoffMin, s.backoffMax = first, most
		return nil
	}
}

// WithMaxIdleConnsPerHost sets how many keep-alive connections to each
// member the pool keeps (default 64). Keep it at least the number of
// goroutines that use the Client at once, or connections are closed and
// opened again under load.
func WithMaxIdleConnsPerHost(n int) Option {
	return func(s *settings) error {
		if n <= 0 {
			return errors.New("WithMaxIdleConnsPerHost: must be positive")
		}
		s.maxIdlePerHost = n
		return nil
	}
}

// tlsConfig builds the HTTPS configuration, or nil for plain HTTP.
func (s *settings) buildTLS() (*tls.Config, error) {
	if !s.tls {
		return nil, nil
	}
	cfg := s.tlsConfig
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if s.caFile != "" {
		pem, err := os.ReadFile(s.caFile)
		if err != nil {
			return nil, fmt.Errorf("WithCA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("WithCA %s: no PEM certificate in it", s.caFile)
		}
		cfg.RootCAs = pool
	}
	if s.certFile != "" || s.keyFile != "" {
		cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
		if err != nil {
			return nil, fmt.Errorf("WithClientCert: %w", err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	return cfg, nil
}
