package main

import (
	"io"
	"strings"
	"testing"
)

// TestBenchFlagErrors checks that bad --veth-pmds, --veth-rates and
// --decoders values are refused before anything is generated or started.
func TestBenchFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sources", "veth", "--veth-pmds", "af_xdp,pcap"}, `--veth-pmds: unknown PMD "pcap"`},
		{[]string{"--sources", "veth", "--veth-pmds", "xdp"}, `--veth-pmds: unknown PMD "xdp"`},
		{[]string{"--veth-rates", "fast"}, "--veth-rates"},
		{[]string{"--decoders", "maybe"}, `--decoders "maybe"`},
		{[]string{"--sources", "wire"}, `unknown source "wire"`},
		{[]string{"--disk-bytes", "lots"}, "--disk-bytes"},
		{[]string{"--sources", "veth", "--veth-pmds", "af_xdp", "--veth-rates", "pps=1000,max"}, "2 af_xdp captures asked for"},
		{[]string{"--sources", "veth", "--veth-pmds", "af_packet,af_xdp", "--veth-rates", "max", "--decoders", "both"}, "2 af_xdp captures asked for"},
	} {
		cmd := newBenchCmd()
		cmd.SetArgs(append(tc.args, "--out", t.TempDir(), "--data", t.TempDir()))
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("bench %v: got %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
