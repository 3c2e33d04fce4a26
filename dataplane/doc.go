// Package dataplane owns where packets come from: the DPDK environment
// (EAL), ports, RX queues, mempools, the burst receive loop and lcore
// pinning, plus the pure-Go capture-file source used by import.
//
// It is the only cgo package. Files that need DPDK are built with
// `cgo && !nodpdk`; without them the live-capture entry points return
// ErrNoDPDK and everything else still builds.
//
// It must not decode, store or index packets: it hands out borrowed packet
// bytes and timestamps, and nothing else.
package dataplane
