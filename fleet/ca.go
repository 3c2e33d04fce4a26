package fleet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// The fleet CA (docs/fleet.md, "Enrolment and mutual TLS"): one ECDSA P-256
// key that signs a certificate for every sensor and for the centre. Sensors
// accept on their fleet port only a client that presents a certificate from
// it; the centre accepts only a sensor whose certificate it signed for the
// name it dialled. Tokens stay for people.
//
//	CADIR/ca.key   the CA's private key, PKCS#8 PEM, 0600: whoever reads it can enrol anything
//	CADIR/ca.crt   the CA's certificate, PEM: every sensor and the centre get a copy
//	OUT/NAME.crt   a member's certificate (client and server auth), PEM
//	OUT/NAME.key   its private key, PKCS#8 PEM, 0600
//	OUT/ca.crt     a copy of the CA certificate, to hand over with the pair
//
//	CADIR/crl.pem  the revocation list, from tapvault fleet revoke (revoke.go)
//
// A compromised member key is revoked (Revoke, and the CRL checked by both
// ends: WithCRL); a compromised CA key means a new CA and enrolling again.

// CA file names inside a CA directory.
const (
	CAKeyFile  = "ca.key"
	CACertFile = "ca.crt"
)

// Validity periods.
const (
	CAValidity      = 10 * 365 * 24 * time.Hour
	DefaultValidity = 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so a member whose clock is a little
	// behind the CA's accepts a certificate issued a moment ago.
	clockSkew = 5 * time.Minute
)

// nameRE is what a member name may be: it is the certificate's common name
// and a DNS SAN (the centre checks a sensor's certificate against the name
// it was configured with), so it must be a valid DNS name.
var nameRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)
})

// CheckName returns an error unless name can name a fleet member (a sensor
// or the centre): lower-case letters, digits, '-' and '.', as a DNS name.
func CheckName(name string) error {
	if len(name) > 253 || !nameRE().MatchString(name) {
		return fmt.Errorf("name %q: use lower-case letters, digits, '-' and '.', like a DNS name (sensor-a, dc1.tap3)", name)
	}
	return nil
}

// CA is a loaded fleet CA.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     *ecdsa.PrivateKey
	dir     string // where it was loaded from: the revocation list goes there
}

// InitCA creates a CA in dir (created 0700 if absent). It refuses to
// overwrite an existing CA: every certificate issued from it would stop
// being accepted.
func InitCA(dir string, now time.Time) (*CA, error) {
	keyPath, certPath := filepath.Join(dir, CAKeyFile), filepath.Join(dir, CACertFile)
	for _, p := range []string{keyPath, certPath} {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("fleet CA: %s exists: refusing to replace the CA (every enrolled member would be locked out); use another --ca directory", p)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fleet CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("fleet CA: generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "tapvault fleet CA", Organization: []string{"tapvault"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true, // it signs members only, never another CA
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("fleet CA: create certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// The key first and exclusively: a half-written CA (key, no cert) is
	// refused by the next InitCA rather than silently replaced.
	if err := writeExclusive(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeExclusive(certPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, CertPEM: certPEM, key: key, dir: dir}, nil
}

// LoadCA reads the CA in dir. A key readable by others is refused: it
// would let anyone on the machine enrol a member.
func LoadCA(dir string) (*CA, error) {
	keyPath, certPath := filepath.Join(dir, CAKeyFile), filepath.Join(dir, CACertFile)
	fi, err := os.Stat(keyPath)
	if err != nil {
		return nil, fmt.Errorf("fleet CA: %w (create one with tapvault fleet enroll --ca %s init)", err, dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("fleet CA: %s is mode %s: the CA key must be readable by its owner only (chmod 600 it)", keyPath, fi.Mode().Perm())
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("fleet CA: %w", err)
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("fleet CA: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("fleet CA: %s and %s: %w", certPath, keyPath, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("fleet CA: %s: not an ECDSA key", keyPath)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("fleet CA: %s: %w", certPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("fleet CA: %s is not a CA certificate", certPath)
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: key, dir: dir}, nil
}

// IssueOptions are a member certificate's extra names and validity.
type IssueOptions struct {
	DNS      []string      // extra DNS SANs (the member's name is always one)
	IPs      []net.IP      // IP SANs
	Validity time.Duration // default DefaultValidity
}

// Issue signs a new key for member name and returns the certificate and
// key as PEM. The certificate serves both ends of the fleet's mutual TLS:
// client auth (the centre calling a sensor) and server auth (a sensor's
// fleet port), so one enrolment per member is enough.
func (ca *CA) Issue(name string, opts IssueOptions, now time.Time) (certPEM, keyPEM []byte, err error) {
	if err := CheckName(name); err != nil {
		return nil, nil, err
	}
	if opts.Validity == 0 {
		opts.Validity = DefaultValidity
	}
	if opts.Validity < 0 {
		return nil, nil, fmt.Errorf("fleet enroll: validity %s: must be positive", opts.Validity)
	}
	notAfter := now.Add(opts.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		return nil, nil, fmt.Errorf("fleet enroll: the certificate would outlive the CA (which expires %s): ask for a shorter validity", ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	dns := []string{name}
	for _, d := range opts.DNS {
		if d = strings.TrimSpace(d); d != "" && d != name {
			dns = append(dns, d)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("fleet enroll: generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"tapvault fleet"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  opts.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("fleet enroll: sign: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// Enroll issues a certificate for name and writes OUT/NAME.crt, OUT/NAME.key
// (0600) and OUT/ca.crt. It refuses to overwrite a member's existing files,
// so a typo cannot replace a running sensor's key. It returns the paths
// written.
func (ca *CA) Enroll(outDir, name string, opts IssueOptions, now time.Time) (certPath, keyPath string, err error) {
	certPEM, keyPEM, err := ca.Issue(name, opts, now)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return "", "", fmt.Errorf("fleet enroll: %w", err)
	}
	certPath, keyPath = filepath.Join(outDir, name+".crt"), filepath.Join(outDir, name+".key")
	if err := writeExclusive(keyPath, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := writeExclusive(certPath, certPEM, 0o644); err != nil {
		os.Remove(keyPath)
		return "", "", err
	}
	caPath := filepath.Join(outDir, CACertFile)
	if old, err := os.ReadFile(caPath); err == nil {
		if string(old) != string(ca.CertPEM) {
			return "", "", fmt.Errorf("fleet enroll: %s holds another CA's certificate; give another --out directory", caPath)
		}
	} else if err := writeExclusive(caPath, ca.CertPEM, 0o644); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// ServerTLSConfig is a sensor's fleet port: TLS 1.3, its own certificate,
// and a client certificate from the fleet CA required and verified (client
// auth EKU) before a byte of HTTP is read. A client without one never gets
// past the handshake, nor one whose certificate WithCRL's list revokes.
func ServerTLSConfig(certFile, keyFile, caFile string, opts ...TLSOption) (*tls.Config, error) {
	cert, pool, err := loadMember(certFile, keyFile, caFile)
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	if err := applyTLSOptions(conf, caFile, "client", opts); err != nil {
		return nil, err
	}
	return conf, nil
}

// ClientTLSConfig is the centre's side: its certificate, and the fleet CA
// as the only root. The caller sets ServerName to the sensor's fleet name
// (ForSensor), so a sensor is checked against the certificate issued for
// that name, whatever address it is reached at; WithCRL refuses a sensor
// whose certificate is revoked.
func ClientTLSConfig(certFile, keyFile, caFile string, opts ...TLSOption) (*tls.Config, error) {
	cert, pool, err := loadMember(certFile, keyFile, caFile)
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS13,
	}
	if err := applyTLSOptions(conf, caFile, "sensor", opts); err != nil {
		return nil, err
	}
	return conf, nil
}

// ForSensor returns a copy of a ClientTLSConfig that accepts only the
// certificate issued for sensor name.
func ForSensor(c *tls.Config, name string) *tls.Config {
	c = c.Clone()
	c.ServerName = name
	return c
}

func loadMember(certFile, keyFile, caFile string) (tls.Certificate, *x509.CertPool, error) {
	if certFile == "" || keyFile == "" || caFile == "" {
		return tls.Certificate{}, nil, errors.New("fleet TLS: a certificate, its key and the fleet CA certificate are all needed (tapvault fleet enroll issues them)")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("fleet TLS: load %s and %s: %w", certFile, keyFile, err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("fleet TLS: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return tls.Certificate{}, nil, fmt.Errorf("fleet TLS: %s holds no PEM certificate", caFile)
	}
	// Checked here so a member enrolled from another CA fails at start,
	// with its name, rather than at every handshake.
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("fleet TLS: %s: %w", certFile, err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("fleet TLS: %s is not signed by the CA in %s: %w", certFile, caFile, err)
	}
	return cert, pool, nil
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("fleet CA: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// newSerial is a random 128-bit serial, as RFC 5280 asks (unique per CA,
// at most 20 octets, positive).
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("fleet CA: serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// writeExclusive creates path with mode, failing if it exists, and syncs it.
func writeExclusive(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("fleet: %s exists: refusing to overwrite it", path)
		}
		return fmt.Errorf("fleet: %w", err)
	}
	// The umask may have narrowed mode; a certificate is public and
	// should stay readable by the service user.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("fleet: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("fleet: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fleet: sync %s: %w", path, err)
	}
	return f.Close()
}
