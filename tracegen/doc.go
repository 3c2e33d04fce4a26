// Package tracegen generates reproducible packet traces: udp64, imix and
// mixed network traffic (gen.go), and application conversations (HTTP, DNS,
// PostgreSQL, Redis) with their ground truth (app.go). Tests, demos and
// benchmarks use them as inputs; `tapvault bench gen` writes them to files.
//
// The generators write frames by patching template headers in place and
// computing the IPv4, TCP, UDP and ICMP checksums themselves; gopacket is
// far too slow for the per-packet loop and is used only by the tests, to
// decode samples and verify those checksums. Measured on the shared 2-core
// development VM (BenchmarkGenerate, pcap into io.Discard, load 10): imix
// 260-650 MB/s, mixed up to 1.6 GB/s, udp64 about 280 MB/s (4.4 Mpps): 1.5
// to 4 s per GB, with 0 allocations per packet. Randomness comes from the
// package's own xoshiro256** generator, so the same options give the same
// bytes on every machine and Go version (a golden hash test pins it).
//
// It must import nothing of tapvault but pcap (a leaf), so that the tests of
// any package can generate traces without linking the pipeline. Nothing in
// it may run on the capture path.
package tracegen
