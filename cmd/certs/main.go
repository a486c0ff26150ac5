// Command certs makes what stcached's -tls-cert, -tls-key and -tls-ca need:
// a CA, and for each host a certificate signed by it, with the names peers
// dial as SANs and both server and client use (Raft peers authenticate each
// other with the same certificate). Go alone, no openssl.
//
//	certs -dir certs -hosts 10.0.0.1,10.0.0.2,10.0.0.3
//	certs -dir certs -hosts 127.0.0.1+localhost        (one local cluster)
//
// An entry "a+b" gets one certificate valid for both names; its files are
// named after the first. An existing CA in -dir is reused, so hosts can be
// added later; existing host files are never overwritten.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "certs: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	fs.SetOutput(out)
	dir := fs.String("dir", "certs", "where to write ca.pem, ca-key.pem and <host>.pem, <host>-key.pem")
	hosts := fs.String("hosts", "127.0.0.1+localhost", "comma-separated hosts, as peers dial them (IP or DNS name); a+b: one certificate for both names")
	days := fs.Int("days", 365, "validity of the host certificates in days (the CA gets ten years)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	ca, caKey, err := loadOrMakeCA(*dir, out)
	if err != nil {
		return err
	}
	for _, entry := range strings.Split(*hosts, ",") {
		names := strings.Split(strings.TrimSpace(entry), "+")
		if names[0] == "" {
			return fmt.Errorf("-hosts: empty host in %q", *hosts)
		}
		certPath := filepath.Join(*dir, names[0]+".pem")
		if _, err := os.Stat(certPath); err == nil {
			fmt.Fprintf(out, "%s exists; left as it is\n", certPath)
			continue
		}
		if err := makeHost(*dir, names, *days, ca, caKey); err != nil {
			return err
		}
		fmt.Fprintf(out, "wrote %s and %s (valid for %s, %d days)\n", certPath, filepath.Join(*dir, names[0]+"-key.pem"), strings.Join(names, ", "), *days)
	}
	fmt.Fprintf(out, "start each node with: -tls-cert %s -tls-key %s -tls-ca %s\n",
		filepath.Join(*dir, "<host>.pem"), filepath.Join(*dir, "<host>-key.pem"), filepath.Join(*dir, "ca.pem"))
	return nil
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// loadOrMakeCA returns the CA in dir, making one if there is none.
func loadOrMakeCA(dir string, out io.Writer) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if certPEM, err := os.ReadFile(certPath); err == nil {
		keyPEM, err := os.ReadFile(keyPath)
		if err != nil {
			return nil, nil, fmt.Errorf("%s exists but its key does not: %w", certPath, err)
		}
		cb, kb := pemBlock(certPEM), pemBlock(keyPEM)
		if cb == nil || kb == nil {
			return nil, nil, fmt.Errorf("%s or %s is not PEM", certPath, keyPath)
		}
		ca, err := x509.ParseCertificate(cb)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", certPath, err)
		}
		key, err := x509.ParseECPrivateKey(kb)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
		}
		fmt.Fprintf(out, "using the CA in %s\n", certPath)
		return ca, key, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "stcache cluster CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	if err := writeCertAndKey(certPath, keyPath, der, key); err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(out, "wrote %s and %s (keep the key offline: whoever has it can mint cluster members)\n", certPath, keyPath)
	return ca, key, nil
}

// makeHost writes names[0].pem and names[0]-key.pem, valid for every name.
func makeHost(dir string, names []string, days int, ca *x509.Certificate, caKey *ecdsa.PrivateKey) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	notAfter := time.Now().AddDate(0, 0, days)
	// Negative days make an expired certificate (for tests): it must still
	// start before it ends.
	notBefore := time.Now().Add(-time.Hour)
	if notAfter.Before(notBefore) {
		notBefore = notAfter.Add(-time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Server for the node's listeners, client for dialling its peers.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	return writeCertAndKey(filepath.Join(dir, names[0]+".pem"), filepath.Join(dir, names[0]+"-key.pem"), der, key)
}

func writeCertAndKey(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func pemBlock(b []byte) []byte {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil
	}
	return blk.Bytes
}
