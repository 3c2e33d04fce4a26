// Package testframe builds well-formed Ethernet frames for tests: VLAN and
// QinQ tags, MPLS labels, IPv4 or IPv6, and TCP, UDP, SCTP or ICMP, with
// lengths and checksums filled in by gopacket's SerializeLayers.
//
// It is for tests only and is never imported by non-test code. It builds
// only well-formed frames: a test about malformed or truncated bytes keeps
// its frames hand-built, so that the bytes under test are visible in the
// test. A decoder test that checks the decoder against gopacket's decoder
// (packet/decode_test.go) may build with this package, since gopacket's
// serialiser and decoder are separate code; it must not check the decoder
// against this package's own description of a frame.
package testframe
