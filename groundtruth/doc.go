// Package groundtruth checks the analytics against ground truth: real Linux
// TCP stacks in network namespaces, a path with a known injected delay per
// direction, real servers from Debian packages with a known injected
// application delay, real clients, and tapvault capturing through DPDK
// (net_af_packet) at three points of the path. It compares what the records
// say (network part, server part, class, tier times) with what was injected
// and prints the table (docs/validation.md).
//
// Why: the analytics' own tests replay traces from tapvault's generator, so
// the tests and the analyser share their assumptions. Here the TCP behaviour
// (delayed ACKs, quick-ack, retransmission timers, NAT) is the kernel's.
//
// The topology (see docs/validation.md for the diagram): namespaces C
// (clients), M (the delay line, a pure-Go L2 bridge over AF_PACKET in two
// stages with the middle capture point between them), S (servers, a bridge
// br0 that also reaches D), D (the front end's backend database) and N (a
// server behind an iptables MASQUERADE/DNAT in S).
//
// It needs root, iproute2, ethtool, iptables, the servers and clients that
// scripts/setup.sh installs, and a tapvault binary built with DPDK. It must
// not be imported by anything but its own programs and tests: it creates
// and deletes namespaces and kills the processes it started.
//
// The mapping from a record's JSON to "network part, server part, class"
// lives in one function, Parts (parts.go), so that renaming the analytics'
// breakdown fields means changing one place. The cases the current analyser
// is known to get wrong are listed, with the reason, in KnownBad
// (knownbad.go); the thresholds are never loosened for them.
package groundtruth
