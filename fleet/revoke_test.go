package fleet

import (
	"context"
	"crypto/tls"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// handshakeBoth is handshake that also returns the server's error: the
// side that refuses a revoked peer says why there.
func handshakeBoth(t *testing.T, server, client *tls.Config) (got string, clientErr, serverErr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		err = c.(*tls.Conn).Handshake()
		if err == nil {
			c.Write([]byte("ok"))
		}
		srvErr <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err != nil {
		return "", err, <-srvErr
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	c.Close()
	return string(b), err, <-srvErr
}

func serialOf(t *testing.T, path string) *big.Int {
	t.Helper()
	c, err := ReadCertificate(path)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}

// TestRevoke: two enrolled clients of one sensor; the CA revokes one: the
// sensor refuses it in the handshake, saying why, and still serves the
// other. Then the CA revokes a sensor while the centre runs: the centre's
// config, made before, reads the new list and refuses that sensor, not
// the other.
func TestRevoke(t *testing.T) {
	caDir, out := enrolled(t, "sensor-a", "sensor-b", "centre", "centre-2", "centre-3")
	f := func(n string) (string, string, string) {
		return filepath.Join(out, n+".crt"), filepath.Join(out, n+".key"), filepath.Join(out, CACertFile)
	}
	ca, err := LoadCA(caDir)
	if err != nil {
		t.Fatal(err)
	}
	crl, added, err := ca.Revoke([]*big.Int{serialOf(t, filepath.Join(out, "centre-2.crt"))}, time.Now())
	if err != nil || len(added) != 1 || crl != filepath.Join(caDir, CRLFile) {
		t.Fatalf("revoke centre-2: got %s, %v, %v; want %s, one added", crl, added, err, filepath.Join(caDir, CRLFile))
	}
	if _, again, err := ca.Revoke(added, time.Now()); err != nil || len(again) != 0 {
		t.Fatalf("revoking again: got %v, %v; want nothing added", again, err)
	}

	sensorA, err := ServerTLSConfig(f("sensor-a"))
	if err != nil {
		t.Fatal(err)
	}
	crt, key, caf := f("sensor-a")
	sensorACRL, err := ServerTLSConfig(crt, key, caf, WithCRL(crl))
	if err != nil {
		t.Fatal(err)
	}
	centre, err := ClientTLSConfig(f("centre"))
	if err != nil {
		t.Fatal(err)
	}
	centre2, err := ClientTLSConfig(f("centre-2"))
	if err != nil {
		t.Fatal(err)
	}
	// Without the list, the revoked client still gets in: what the list
	// changes.
	if got, _, _ := handshakeBoth(t, sensorA, ForSensor(centre2, "sensor-a")); got != "ok" {
		t.Fatalf("centre-2 without a revocation list: got %q, want ok", got)
	}
	if got, cerr, serr := handshakeBoth(t, sensorACRL, ForSensor(centre, "sensor-a")); got != "ok" {
		t.Fatalf("centre, not revoked: got %q (client %v, server %v), want ok", got, cerr, serr)
	}
	got, cerr, serr := handshakeBoth(t, sensorACRL, ForSensor(centre2, "sensor-a"))
	if got != "" || cerr == nil || serr == nil || !strings.Contains(serr.Error(), `client's certificate "centre-2"`) || !strings.Contains(serr.Error(), "revoked") {
		t.Fatalf("centre-2, revoked: got %q, client %v, server %v; want nothing, and the sensor saying centre-2's certificate is revoked", got, cerr, serr)
	}
	t.Logf("the sensor refusing centre-2: %v", serr)

	// The centre side, with the list loaded before sensor-b is revoked.
	crt, key, caf = f("centre")
	centreCRL, err := ClientTLSConfig(crt, key, caf, WithCRL(crl))
	if err != nil {
		t.Fatal(err)
	}
	sensorB, err := ServerTLSConfig(f("sensor-b"))
	if err != nil {
		t.Fatal(err)
	}
	if got, cerr, serr := handshakeBoth(t, sensorB, ForSensor(centreCRL, "sensor-b")); got != "ok" {
		t.Fatalf("sensor-b before its revocation: got %q (client %v, server %v), want ok", got, cerr, serr)
	}
	time.Sleep(10 * time.Millisecond) // a new modification time even on a coarse clock
	if _, _, err := ca.Revoke([]*big.Int{serialOf(t, filepath.Join(out, "sensor-b.crt"))}, time.Now()); err != nil {
		t.Fatal(err)
	}
	got, cerr, _ = handshakeBoth(t, sensorB, ForSensor(centreCRL, "sensor-b"))
	if got != "" || cerr == nil || !strings.Contains(cerr.Error(), `sensor's certificate "sensor-b"`) {
		t.Fatalf("sensor-b, revoked: got %q, %v; want the centre refusing it, saying why", got, cerr)
	}
	t.Logf("the centre refusing sensor-b: %v", cerr)
	if got, cerr, serr := handshakeBoth(t, sensorACRL, ForSensor(centreCRL, "sensor-a")); got != "ok" {
		t.Fatalf("sensor-a with the centre's list: got %q (client %v, server %v), want ok", got, cerr, serr)
	}

	// A list that no longer loads refuses everyone (failing open would
	// let the revoked back in) until it loads again.
	good, _ := os.ReadFile(crl)
	if err := os.WriteFile(crl, []byte("not a list"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _, serr := handshakeBoth(t, sensorACRL, ForSensor(centre, "sensor-a")); got != "" || serr == nil || !strings.Contains(serr.Error(), "refusing every peer") {
		t.Fatalf("a damaged list: got %q, server %v; want every client refused", got, serr)
	}
	if err := os.WriteFile(crl, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _, serr := handshakeBoth(t, sensorACRL, ForSensor(centre, "sensor-a")); got != "ok" {
		t.Fatalf("the list restored: got %q (server %v), want ok", got, serr)
	}

	// Open connections: one from centre-3 to sensor-a's tracked listener,
	// and one from the centre to sensor-a through DialTLSContext. Revoking
	// centre-3 closes the first; revoking sensor-a then the second.
	echo := serveEcho(t, sensorACRL)
	crt, key, caf = f("centre-3")
	centre3, err := ClientTLSConfig(crt, key, caf)
	if err != nil {
		t.Fatal(err)
	}
	byCentre3, err := tls.Dial("tcp", echo, ForSensor(centre3, "sensor-a"))
	if err != nil {
		t.Fatal(err)
	}
	defer byCentre3.Close()
	dial := DialTLSContext(ForSensor(centreCRL, "sensor-a"), &net.Dialer{}, 5*time.Second)
	byCentre, err := dial(context.Background(), "tcp", echo)
	if err != nil {
		t.Fatal(err)
	}
	defer byCentre.Close()
	for _, c := range []net.Conn{byCentre3, byCentre} {
		if err := roundTrip(c); err != nil {
			t.Fatalf("open connection before any revocation: %v", err)
		}
	}
	revokeAndWait := func(name string, c net.Conn) {
		t.Helper()
		if _, _, err := ca.Revoke([]*big.Int{serialOf(t, filepath.Join(out, name+".crt"))}, time.Now()); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for time.Since(start) < 5*crlPoll {
			if roundTrip(c) != nil {
				t.Logf("the connection of %s closed %s after its revocation", name, time.Since(start).Round(time.Millisecond))
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("the connection of %s still open %s after its revocation", name, 5*crlPoll)
	}
	revokeAndWait("centre-3", byCentre3)
	if err := roundTrip(byCentre); err != nil {
		t.Fatalf("the centre's connection after centre-3's revocation: %v, want it open", err)
	}
	revokeAndWait("sensor-a", byCentre)

	// A list from another CA is refused at start.
	otherCA, otherOut := enrolled(t, "x")
	oca, err := LoadCA(otherCA)
	if err != nil {
		t.Fatal(err)
	}
	otherCRL, _, err := oca.Revoke([]*big.Int{serialOf(t, filepath.Join(otherOut, "x.crt"))}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	crt, key, caf = f("sensor-a")
	if _, err := ServerTLSConfig(crt, key, caf, WithCRL(otherCRL)); err == nil || !strings.Contains(err.Error(), "not signed by the fleet CA") {
		t.Fatalf("another CA's list: got %v, want refused at start", err)
	}
}

func TestParseSerial(t *testing.T) {
	n := new(big.Int).SetUint64(0x3f2a_00ff_1234)
	for _, s := range []string{FormatSerial(n), "3f:2a:00:ff:12:34", "0x3F2A00FF1234", " 3F2A00FF1234\n"} {
		got, err := ParseSerial(s)
		if err != nil || got.Cmp(n) != 0 {
			t.Errorf("ParseSerial(%q): got %v, %v, want %v", s, got, err, n)
		}
	}
	for _, s := range []string{"", "zz", "0", "-5"} {
		if _, err := ParseSerial(s); err == nil {
			t.Errorf("ParseSerial(%q): got no error", s)
		}
	}
}

// serveEcho serves conf on a TrackConns listener: each connection echoes
// the bytes it reads. It returns the address.
func serveEcho(t *testing.T, conf *tls.Config) string {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := tls.NewListener(TrackConns(raw), conf)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return raw.Addr().String()
}

// roundTrip writes a byte and reads it back.
func roundTrip(c net.Conn) error {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte{7}); err != nil {
		return err
	}
	b := make([]byte, 1)
	_, err := io.ReadFull(c, b)
	return err
}
