package dataplane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"

	"tapvault/pcap"
)

// The kernel filter of AF_PACKET capture is classic BPF, and users write it
// in tcpdump's language. No pure-Go compiler of that language exists (the
// project's filter language, package query, matches decoded packets and is
// not BPF; gopacket's pcap.CompileBPFFilter is libpcap through cgo), so
// libpcap's compiler is used through `tcpdump -ddd`, which prints the
// program as numbers. tcpdump compiles for a capture file's link type and
// snap length, so it is given an empty file with those: it needs no
// privilege and no interface.

// TcpdumpPath is the tcpdump that CompileFilter runs; a bare name is looked
// up in $PATH.
var TcpdumpPath = "tcpdump"

// CompileFilter compiles a tcpdump filter expression for packets of
// linkType into a classic BPF program whose accept value is snaplen (0:
// pcap.MaxSnapLen), ready for AFPacketConfig.Filter.
func CompileFilter(expr string, linkType uint16, snaplen int) ([]bpf.RawInstruction, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("empty filter expression")
	}
	if snaplen <= 0 || snaplen > pcap.MaxSnapLen {
		snaplen = pcap.MaxSnapLen
	}
	bin, err := exec.LookPath(TcpdumpPath)
	if err != nil {
		return nil, fmt.Errorf("filter %q: the kernel filter is compiled by tcpdump, which was not found (%w): install it (apt-get install tcpdump) or capture without --filter", expr, err)
	}
	f, err := os.CreateTemp("", "tapvault-filter-*.pcap")
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	defer os.Remove(f.Name())
	// An empty pcap file: its header says the link type and snap length.
	var hdr [24]byte
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], uint32(snaplen))
	binary.LittleEndian.PutUint32(hdr[20:], uint32(linkType))
	_, werr := f.Write(hdr[:])
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("filter: %w", werr)
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(bin, "-ddd", "-r", f.Name(), "--", expr)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndex(msg, "\n"); i >= 0 {
			msg = msg[i+1:] // tcpdump's last line is the reason
		}
		msg = strings.TrimPrefix(msg, "tcpdump: ")
		return nil, fmt.Errorf("filter %q: %s (tcpdump syntax, see pcap-filter(7))", expr, msg)
	}
	prog, err := parseDDD(out.String())
	if err != nil {
		return nil, fmt.Errorf("filter %q: reading tcpdump -ddd output: %w", expr, err)
	}
	return prog, nil
}

// parseDDD reads `tcpdump -ddd` output: the instruction count, then one
// instruction a line as "code jt jf k" in decimal.
func parseDDD(s string) ([]bpf.RawInstruction, error) {
	rows := strings.Split(strings.TrimSpace(s), "\n")
	if len(rows) == 0 || rows[0] == "" {
		return nil, errors.New("no output")
	}
	n, err := strconv.Atoi(strings.TrimSpace(rows[0]))
	if err != nil {
		return nil, fmt.Errorf("instruction count %q: %w", rows[0], err)
	}
	if n < 1 || n > 4096 || len(rows)-1 != n {
		return nil, fmt.Errorf("%d instructions announced, %d given", n, len(rows)-1)
	}
	prog := make([]bpf.RawInstruction, n)
	for i, r := range rows[1:] {
		f := strings.Fields(r)
		if len(f) != 4 {
			return nil, fmt.Errorf("instruction %d %q: want 4 numbers", i, r)
		}
		var v [4]uint64
		for j, x := range f {
			bits := []int{16, 8, 8, 32}[j]
			if v[j], err = strconv.ParseUint(x, 10, bits); err != nil {
				return nil, fmt.Errorf("instruction %d %q: %w", i, r, err)
			}
		}
		prog[i] = bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])}
	}
	return prog, nil
}
