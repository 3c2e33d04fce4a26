package dataplane

import (
	"fmt"
	"os"

	"tapvault/pcap"
)

// This file is pure Go: it works out, before a net_pcap port starts, how
// many packets each replay queue will deliver and how large the largest is.
// replayQueue (replaysource.go) uses the count to return io.EOF at the end
// of a replay, and OpenPort uses the size to give mbufs enough data room.

// vdevArgs returns the devargs of the --vdev whose device name is name, as
// key/value pairs in order, or ok=false when args hold no such --vdev.
// Both "--vdev=X" and "--vdev X" forms are understood.
func vdevArgs(args []string, name string) (kv [][2]string, ok bool) {
	for _, d := range allVdevs(args) {
		if d.name == name {
			return d.kv, true
		}
	}
	return nil, false
}

// pcapRxFiles returns the rx_pcap files of a net_pcap vdev, in queue order
// (the PMD makes one RX queue per rx_pcap argument).
func pcapRxFiles(kv [][2]string) []string {
	var files []string
	for _, p := range kv {
		if p[0] == "rx_pcap" {
			files = append(files, p[1])
		}
	}
	return files
}

// countCapture counts the packets of the pcap or pcapng file at path, as
// libpcap will replay them (pcap.Count).
func countCapture(path string) (pcap.Counts, error) {
	f, err := os.Open(path)
	if err != nil {
		return pcap.Counts{}, fmt.Errorf("count capture %q: %w", path, err)
	}
	defer f.Close()
	info, err := pcap.Count(f)
	if err != nil {
		return info, fmt.Errorf("count capture %q: %w", path, err)
	}
	return info, nil
}
