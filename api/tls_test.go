package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"tapvault/query"
	"testing"
	"time"
)

// selfSigned writes a certificate and key for 127.0.0.1 and returns their
// paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tapvault test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestAPIOverTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	if _, err := NewServer(&query.Store{}, ServerOptions{Addr: "127.0.0.1:0", CertFile: certFile, Logger: quietLog()}); err == nil {
		t.Fatalf("a certificate without a key was accepted")
	}
	if _, err := NewServer(&query.Store{}, ServerOptions{Addr: "127.0.0.1:0", CertFile: keyFile, KeyFile: keyFile, Logger: quietLog()}); err == nil {
		t.Fatalf("a key given as the certificate was accepted")
	}
	srv, err := NewServer(&query.Store{}, ServerOptions{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, Token: "tttttttttttttttttttt", Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx) }()
	defer func() { cancel(); <-done }()
	<-srv.ready
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	req, _ := http.NewRequest("GET", "https://"+srv.Addr()+"/nothing", nil)
	req.Header.Set("Authorization", "Bearer tttttttttttttttttttt")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("https request: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.TLS == nil {
		t.Fatalf("got status %d, TLS %v; want 404 over TLS", resp.StatusCode, resp.TLS != nil)
	}
	// Plain HTTP to a TLS listener does not get an answer from the API.
	plain := &http.Client{Timeout: 2 * time.Second}
	if r, err := plain.Get("http://" + srv.Addr() + "/nothing"); err == nil {
		r.Body.Close()
		if r.StatusCode == http.StatusNotFound || r.StatusCode == http.StatusUnauthorized {
			t.Fatalf("plain HTTP reached the API (status %d)", r.StatusCode)
		}
	}
}
