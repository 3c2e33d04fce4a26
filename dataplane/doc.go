// Package dataplane owns where packets come from: the DPDK environment
// (EAL), ports, RX queues, mempools, the burst receive loop and lcore
// pinning, plus the pure-Go capture-file source used by import (a burst
// loop over pcap.Reader: the file formats are package pcap's).
//
// It is the only cgo package. Files that need DPDK are built with
// `cgo && !nodpdk`; without them (nodpdk.go) the live-capture entry points
// return ErrNoDPDK and everything else still builds.
//
// It must not decode, store or index packets: it hands out borrowed packet
// bytes and timestamps, and nothing else. It must not copy packet bytes on
// the receive path, nor log them.
//
// # DPDK binding
//
//   - InitEAL runs rte_eal_init once per process on a goroutine locked to its
//     OS thread forever; that thread is the main lcore and also runs the
//     control plane (OpenPort, Stop, NewProducer) through a channel.
//   - Workers are locked Go threads pinned with PinThread (sched affinity to
//     the lcore's CPUs + rte_thread_register for a mempool cache), not
//     threads EAL launches. Measured with net_null: a registered thread
//     receives 1.4-2x faster than an unregistered one (1.2-1.5 vs 1.8-3.2 µs
//     per burst of 64), because freeing and allocating mbufs then goes
//     through the per-lcore mempool cache. RegisterThread registers without
//     pinning. OpenPort re-creates a closed vdev from its --vdev arguments.
//   - RxQueue.Recv is one cgo call per burst (dpdk.c: tv_rx_burst): free the
//     previous burst, rte_eth_rx_burst, describe each packet (data pointer,
//     lengths, timestamp) in a C array that Go reads in place. Packet Data
//     is unsafe.Slice over mbuf memory, valid until the next Recv or Close.
//     0 allocs per Recv (TestRecvAllocs).
//   - Timestamps: net_pcap's capture time (µs), the NIC's clock where the RX
//     timestamp offload exists, otherwise TSC once per burst re-anchored to
//     CLOCK_REALTIME every second.
//   - A net_pcap replay ends with io.EOF once every packet counted in the
//     file beforehand has arrived, or after an idle timeout. The Source
//     that Port.Source returns for a replay queue decides it; the RxQueue
//     itself never ends.
//   - Producer feeds a TX queue from memory (net_ring loops TX queue q to RX
//     queue q) for benchmarks.
//
// # Kernel capture
//
// AFPacket (afpacket.go, pure Go, Linux) is the live source where DPDK
// cannot own the NIC: an AF_PACKET socket with a TPACKET_V3 ring. A Recv
// hands out the packets of the ring's current block in place (valid until
// the next Recv or Close) and parks on Go's network poller while no block
// is ready, so an idle endpoint costs no polling. Several sockets share a
// PACKET_FANOUT_HASH group (OpenAFPacketGroup); a classic BPF filter and the
// snap length run in the kernel (CompileFilter uses tcpdump's compiler).
// It builds and runs with CGO_ENABLED=0.
//
// docs/dataplane.md has the details and measurements.
package dataplane
