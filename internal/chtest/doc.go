// Package chtest starts a real clickhouse-server for tests: the Debian
// package's binary (18.16 on this project's machines, scripts/setup.sh
// installs it), on spare loopback ports, with its own data directory under
// the test's TempDir, so that the fleet code is tested against the server it
// must work with rather than against a fake that accepts whatever we send.
//
// A Server can be stopped and started again on the same ports and data
// directory mid-test, which is how the outage tests take the centre away
// and bring it back.
//
// It is for tests only and is never imported by non-test code. A test skips,
// saying why, only when clickhouse-server is not installed; any other
// failure to start is a test failure.
package chtest
