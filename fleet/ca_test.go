package fleet

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// enrolled makes a CA in a temp dir and enrols names; it returns the out dir.
func enrolled(t *testing.T, names ...string) (caDir, out string) {
	t.Helper()
	caDir, out = filepath.Join(t.TempDir(), "ca"), filepath.Join(t.TempDir(), "out")
	now := time.Now()
	ca, err := InitCA(caDir, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, _, err := ca.Enroll(out, n, IssueOptions{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, now); err != nil {
			t.Fatal(err)
		}
	}
	return caDir, out
}

func TestCAInitAndIssue(t *testing.T) {
	caDir, out := enrolled(t, "sensor-a")
	fi, err := os.Stat(filepath.Join(caDir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("CA key mode: got %s, want 0600", got)
	}
	if fi, err := os.Stat(filepath.Join(out, "sensor-a.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("member key: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}
	if _, err := InitCA(caDir, time.Now()); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("second InitCA: got %v, want a refusal", err)
	}
	ca, err := LoadCA(caDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Enroll(out, "sensor-a", IssueOptions{}, time.Now()); err == nil {
		t.Error("enrolling sensor-a again over its files: got no error")
	}
	b, _ := os.ReadFile(filepath.Join(out, "sensor-a.crt"))
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "sensor-a" || len(cert.DNSNames) != 1 || cert.DNSNames[0] != "sensor-a" {
		t.Errorf("names: got CN %q DNS %v, want sensor-a", cert.Subject.CommonName, cert.DNSNames)
	}
	if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("IP SANs: got %v, want [127.0.0.1]", cert.IPAddresses)
	}
	eku := map[x509.ExtKeyUsage]bool{}
	for _, u := range cert.ExtKeyUsage {
		eku[u] = true
	}
	if !eku[x509.ExtKeyUsageClientAuth] || !eku[x509.ExtKeyUsageServerAuth] {
		t.Errorf("EKUs: got %v, want client and server auth", cert.ExtKeyUsage)
	}
	if cert.IsCA {
		t.Error("a member certificate is a CA")
	}
	for _, bad := range []string{"", "Sensor-A", "a b", "../x", "-a", strings.Repeat("a", 64)} {
		if _, _, err := ca.Issue(bad, IssueOptions{}, time.Now()); err == nil {
			t.Errorf("Issue(%q): got no error", bad)
		}
	}
	if err := os.Chmod(filepath.Join(caDir, CAKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(caDir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadCA with a 0644 key: got %v, want a refusal", err)
	}
}

// handshake dials a TLS server that serves "ok" to whoever passes its
// config, and returns what the client read, or the error.
func handshake(t *testing.T, server, client *tls.Config) (string, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if c.(*tls.Conn).Handshake() == nil {
			c.Write([]byte("ok"))
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestMutualTLS(t *testing.T) {
	_, out := enrolled(t, "sensor-a", "centre")
	_, other := enrolled(t, "centre")
	f := func(dir, n string) (string, string, string) {
		return filepath.Join(dir, n+".crt"), filepath.Join(dir, n+".key"), filepath.Join(dir, CACertFile)
	}
	srv, err := ServerTLSConfig(f(out, "sensor-a"))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ClientTLSConfig(f(out, "centre"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := handshake(t, srv, ForSensor(cli, "sensor-a")); err != nil || got != "ok" {
		t.Fatalf("enrolled centre: got %q, %v, want ok", got, err)
	}
	// The centre dialling "sensor-b" but reaching sensor-a's certificate.
	if _, err := handshake(t, srv, ForSensor(cli, "sensor-b")); err == nil {
		t.Error("sensor-a's certificate accepted for sensor-b")
	}
	// No client certificate: trusts the CA, presents nothing.
	anon := ForSensor(cli, "sensor-a")
	anon.Certificates = nil
	if got, err := handshake(t, srv, anon); err == nil || got != "" {
		t.Errorf("client without a certificate: got %q, %v, want a refused handshake", got, err)
	}
	// A certificate from another CA (which this client trusts for the
	// server's sake, so only the client side differs).
	stranger, err := ClientTLSConfig(f(other, "centre"))
	if err != nil {
		t.Fatal(err)
	}
	stranger.RootCAs = cli.RootCAs
	if got, err := handshake(t, srv, ForSensor(stranger, "sensor-a")); err == nil || got != "" {
		t.Errorf("client from another CA: got %q, %v, want a refused handshake", got, err)
	}
	// TLS 1.2 is refused by the fleet port.
	old := ForSensor(cli, "sensor-a")
	old.MaxVersion = tls.VersionTLS12
	if _, err := handshake(t, srv, old); err == nil {
		t.Error("TLS 1.2 client accepted")
	}
	// A member pair from another CA than the CA file is refused at load.
	crt, key, _ := f(other, "centre")
	if _, err := ClientTLSConfig(crt, key, filepath.Join(out, CACertFile)); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("mismatched CA at load: got %v", err)
	}
}
