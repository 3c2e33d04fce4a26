package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Revocation (docs/fleet.md, "Revoking a member"): the fleet CA keeps an
// X.509 CRL, CADIR/crl.pem, signed by its key. `tapvault fleet revoke` adds
// a member's certificate to it; the operator copies it, as ca.crt, to the
// sensors (--fleet-crl) and the centre (tls.crl in fleet.yaml), which check
// the peer of every fleet handshake against it: a sensor refuses a revoked
// client, the centre a revoked sensor. Why a CRL and not a list of serials
// in the configuration: it is the file every PKI tool reads and writes
// (openssl crl, nginx's ssl_crl, ...), it is signed, so a copy cannot be
// altered on its way, and it is one file for the whole fleet that the CA
// alone produces.
//
//	CADIR/crl.pem   the CA's revocation list, PEM "X509 CRL": every revoked
//	                serial with its time; its number grows by one a change

// CRLFile is the revocation list's name in the CA directory.
const CRLFile = "crl.pem"

// FormatSerial writes a certificate serial as openssl x509 -serial does:
// upper-case hex.
func FormatSerial(n *big.Int) string {
	return strings.ToUpper(n.Text(16))
}

// ParseSerial reads a serial written as FormatSerial does, or with colons
// (openssl x509 -text), or with a 0x prefix.
func ParseSerial(s string) (*big.Int, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(strings.ReplaceAll(strings.TrimSpace(s), ":", ""), "0x"), "0X")
	n, ok := new(big.Int).SetString(t, 16)
	if !ok || n.Sign() <= 0 {
		return nil, fmt.Errorf("serial %q: want the certificate's serial number in hex (openssl x509 -noout -serial -in NAME.crt)", s)
	}
	return n, nil
}

// ReadCertificate reads the first certificate of a PEM file.
func ReadCertificate(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("fleet: %s holds no PEM certificate", path)
		}
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("fleet: %s: %w", path, err)
			}
			return c, nil
		}
	}
}

// Revoked is one entry of the revocation list.
type Revoked struct {
	Serial *big.Int
	At     time.Time
}

// Revoke adds serials to the CA's revocation list (CADIR/crl.pem, created
// at the first revocation), signs it again and replaces the file
// atomically. It returns the list's path and the serials that were not
// revoked before (revoking twice changes nothing).
func (ca *CA) Revoke(serials []*big.Int, now time.Time) (path string, added []*big.Int, err error) {
	if ca.dir == "" {
		return "", nil, errors.New("BUG: Revoke on a CA not loaded from a directory")
	}
	path = filepath.Join(ca.dir, CRLFile)
	var entries []x509.RevocationListEntry
	number := big.NewInt(0)
	if b, err := os.ReadFile(path); err == nil {
		old, err := parseCRL(b, []*x509.Certificate{ca.Cert})
		if err != nil {
			return "", nil, fmt.Errorf("fleet revoke: %s: %w", path, err)
		}
		entries, number = old.RevokedCertificateEntries, old.Number
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", nil, fmt.Errorf("fleet revoke: %w", err)
	}
	have := map[string]bool{}
	for _, e := range entries {
		have[e.SerialNumber.String()] = true
	}
	for _, s := range serials {
		if have[s.String()] {
			continue
		}
		have[s.String()] = true
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: now.UTC()})
		added = append(added, s)
	}
	if len(added) == 0 {
		return path, nil, nil
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    new(big.Int).Add(number, big.NewInt(1)),
		ThisUpdate:                now.Add(-clockSkew),
		// Until the CA itself expires: the list is replaced at each
		// revocation, not on a schedule, and the checks below do not
		// refuse an old list (a stale copy is the operator's to notice).
		NextUpdate: ca.Cert.NotAfter,
	}, ca.Cert, ca.key)
	if err != nil {
		return "", nil, fmt.Errorf("fleet revoke: sign the list: %w", err)
	}
	if err := writeAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		return "", nil, fmt.Errorf("fleet revoke: %w", err)
	}
	return path, added, nil
}

// parseCRL reads a PEM (or DER) CRL and checks that one of cas signed it.
func parseCRL(b []byte, cas []*x509.Certificate) (*x509.RevocationList, error) {
	der := b
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("a PEM %q block, want \"X509 CRL\"", blk.Type)
		}
		der = blk.Bytes
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, err
	}
	for _, ca := range cas {
		if bytes.Equal(crl.RawIssuer, ca.RawSubject) && crl.CheckSignatureFrom(ca) == nil {
			return crl, nil
		}
	}
	return nil, errors.New("not signed by the fleet CA")
}

// crlChecker holds a revocation list for the TLS checks and reads it again
// when its file changes (another inode, size or modification time), so a new list takes
// effect at the next handshake, without a restart. A list that no longer
// loads refuses every peer until it does: failing open would let a revoked
// member back in.
type crlChecker struct {
	path string
	cas  []*x509.Certificate

	mu      sync.Mutex
	fi      os.FileInfo          // the file as last loaded
	revoked map[string]time.Time // serial (decimal) -> revocation time
	err     error
}

func newCRLChecker(path string, cas []*x509.Certificate) (*crlChecker, error) {
	c := &crlChecker{path: path, cas: cas}
	if err := c.load(); err != nil {
		return nil, err
	}
	live.mu.Lock()
	live.checkers = append(live.checkers, c)
	live.mu.Unlock()
	return c, nil
}

// covers reports whether leaf was issued by one of the checker's CAs (the
// key identifier Go and openssl write, else the signature): a list says
// nothing of another CA's members.
func (c *crlChecker) covers(leaf *x509.Certificate) bool {
	for _, ca := range c.cas {
		if len(leaf.AuthorityKeyId) > 0 && len(ca.SubjectKeyId) > 0 {
			if bytes.Equal(leaf.AuthorityKeyId, ca.SubjectKeyId) {
				return true
			}
			continue
		}
		if leaf.CheckSignatureFrom(ca) == nil {
			return true
		}
	}
	return false
}

// load reads the file; called with mu held (or before c is shared).
func (c *crlChecker) load() error {
	fi, err := os.Stat(c.path)
	if err != nil {
		return fmt.Errorf("fleet TLS: revocation list: %w", err)
	}
	b, err := os.ReadFile(c.path)
	if err != nil {
		return fmt.Errorf("fleet TLS: revocation list: %w", err)
	}
	crl, err := parseCRL(b, c.cas)
	if err != nil {
		return fmt.Errorf("fleet TLS: revocation list %s: %w", c.path, err)
	}
	rv := make(map[string]time.Time, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		rv[e.SerialNumber.String()] = e.RevocationTime
	}
	c.fi, c.revoked = fi, rv
	return nil
}

// check refuses leaf if the list revokes it. side names the peer in the
// error ("client", "sensor").
func (c *crlChecker) check(leaf *x509.Certificate, side string) error {
	if !c.covers(leaf) {
		return nil // another CA's (the chain was verified against the pool)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	fi, err := os.Stat(c.path)
	switch {
	case err != nil:
		c.err = fmt.Errorf("fleet TLS: revocation list: %w: refusing every peer until it is back", err)
	case c.err != nil || !os.SameFile(fi, c.fi) || !fi.ModTime().Equal(c.fi.ModTime()) || fi.Size() != c.fi.Size():
		// Replaced (a rename: another inode) or rewritten in place.
		c.err = c.load()
		if c.err != nil {
			c.err = fmt.Errorf("%w: refusing every peer until it loads", c.err)
		}
	}
	if c.err != nil {
		return c.err
	}
	if at, ok := c.revoked[leaf.SerialNumber.String()]; ok {
		return fmt.Errorf("fleet TLS: the %s's certificate %q (serial %s) was revoked at %s (%s)",
			side, leaf.Subject.CommonName, FormatSerial(leaf.SerialNumber), at.UTC().Format(time.RFC3339), c.path)
	}
	return nil
}

// TLSOption changes a fleet TLS config.
type TLSOption func(*tlsOptions)

type tlsOptions struct {
	crl string
}

// WithCRL makes the config refuse a peer whose certificate the revocation
// list at path (the fleet CA's crl.pem) revokes. "" checks nothing. The
// list must be signed by the CA of the config's CA file; it is read again
// when the file changes.
func WithCRL(path string) TLSOption {
	return func(o *tlsOptions) { o.crl = path }
}

// applyTLSOptions installs the options' checks on conf. side names the
// peer in errors.
func applyTLSOptions(conf *tls.Config, caFile, side string, opts []TLSOption) error {
	var o tlsOptions
	for _, f := range opts {
		f(&o)
	}
	if o.crl == "" {
		return nil
	}
	cas, err := readCertificates(caFile)
	if err != nil {
		return err
	}
	chk, err := newCRLChecker(o.crl, cas)
	if err != nil {
		return err
	}
	// VerifyConnection runs after the chain is verified, on both ends and
	// on resumed sessions too, so a ticket issued before a revocation does
	// not get the peer back in.
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil // nothing presented: the chain check refuses it
		}
		return chk.check(cs.PeerCertificates[0], side)
	}
	conf.VerifyConnection = verify
	if side == "client" {
		// A server: a connection accepted by TrackConns's listener learns
		// its client's certificate here, so that a later revocation
		// closes it (sweep).
		base := conf.Clone()
		conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			tc, ok := hello.Conn.(*trackedConn)
			if !ok {
				return nil, nil // not tracked: conf as it is
			}
			c := base.Clone()
			c.VerifyConnection = func(cs tls.ConnectionState) error {
				if err := verify(cs); err != nil {
					return err
				}
				if len(cs.PeerCertificates) > 0 {
					tc.setPeer(cs.PeerCertificates[0], side)
				}
				return nil
			}
			return c, nil
		}
	}
	return nil
}

// readCertificates reads every certificate of a PEM file.
func readCertificates(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet TLS: %w", err)
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("fleet TLS: %s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("fleet TLS: %s holds no PEM certificate", path)
	}
	return out, nil
}

// writeAtomic replaces path with b: a temporary file, synced, renamed over
// it, and the directory synced, so a reader sees the old list or the new.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	os.Remove(tmp)
	if err := writeExclusive(tmp, b, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Connections already open when a member is revoked: a handshake check
// alone would leave them open (the centre keeps one to each sensor alive
// with its probes, and a revoked client could hold one for as long as it
// likes). So the fleet's connections are tracked with their peer's
// certificate, on a sensor through TrackConns's listener and on the centre
// through DialTLSContext, and every crlPoll each tracked connection is
// checked against the lists again: one whose peer a list now revokes is
// closed, and its next handshake is refused.

// crlPoll is how often open connections are checked against the lists.
const crlPoll = time.Second

var live struct {
	mu       sync.Mutex
	conns    map[*trackedConn]struct{}
	checkers []*crlChecker
	sweeping bool
}

// trackedConn is a fleet connection and its peer's certificate, once the
// handshake has verified it.
type trackedConn struct {
	net.Conn
	mu   sync.Mutex
	peer *x509.Certificate
	side string
	once sync.Once
}

func (c *trackedConn) setPeer(leaf *x509.Certificate, side string) {
	c.mu.Lock()
	c.peer, c.side = leaf, side
	c.mu.Unlock()
}

// Close closes the connection and stops tracking it.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		live.mu.Lock()
		delete(live.conns, c)
		live.mu.Unlock()
	})
	return c.Conn.Close()
}

func track(nc net.Conn) *trackedConn {
	c := &trackedConn{Conn: nc}
	live.mu.Lock()
	defer live.mu.Unlock()
	if live.conns == nil {
		live.conns = map[*trackedConn]struct{}{}
	}
	live.conns[c] = struct{}{}
	if !live.sweeping {
		live.sweeping = true
		go sweep()
	}
	return c
}

// sweep checks the tracked connections every crlPoll while there are any,
// and closes those whose peer a list revokes (or that a list no longer
// loading refuses, as a new handshake would be).
func sweep() {
	for {
		time.Sleep(crlPoll)
		live.mu.Lock()
		if len(live.conns) == 0 {
			live.sweeping = false
			live.mu.Unlock()
			return
		}
		conns := make([]*trackedConn, 0, len(live.conns))
		for c := range live.conns {
			conns = append(conns, c)
		}
		checkers := slices.Clone(live.checkers)
		live.mu.Unlock()
		for _, c := range conns {
			c.mu.Lock()
			peer, side := c.peer, c.side
			c.mu.Unlock()
			if peer == nil {
				continue // handshake not done yet: it checks for itself
			}
			for _, chk := range checkers {
				if err := chk.check(peer, side); err != nil {
					slog.Warn("fleet TLS: closing an open connection", "remote", c.RemoteAddr().String(), "err", err)
					c.Close()
					break
				}
			}
		}
	}
}

// TrackConns wraps a sensor's fleet port listener (plain TCP, before TLS):
// with a ServerTLSConfig made WithCRL, a connection whose client is revoked
// while it is open is closed within crlPoll.
func TrackConns(ln net.Listener) net.Listener { return trackingListener{ln} }

type trackingListener struct{ net.Listener }

var (
	_ net.Listener = trackingListener{}
	_ net.Conn     = (*trackedConn)(nil)
)

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return track(c), nil
}

// DialTLSContext is the centre's dial function for an http.Transport
// (DialTLSContext) to a sensor: TCP with dialer, the TLS handshake with
// conf (a ForSensor config; timeout bounds it), and, with a ClientTLSConfig
// made WithCRL, the connection closed within crlPoll if the sensor's
// certificate is revoked while it is open.
func DialTLSContext(conf *tls.Config, dialer *net.Dialer, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := track(raw)
		c := conf
		if c.ServerName == "" {
			c = c.Clone()
			c.ServerName, _, _ = net.SplitHostPort(addr)
		}
		conn := tls.Client(tc, c)
		hctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := conn.HandshakeContext(hctx); err != nil {
			conn.Close()
			return nil, err
		}
		if cs := conn.ConnectionState(); len(cs.PeerCertificates) > 0 {
			tc.setPeer(cs.PeerCertificates[0], "sensor")
		}
		return conn, nil
	}
}
