package tracegen

import (
	"testing"

	"tapvault/packet"
	"tapvault/pcap"
)

// With Active set, flows come and go: a tenth of the trace holds about the
// active window's worth of flows, while the whole trace holds all of them.
func TestGenerateActiveWindow(t *testing.T) {
	const packets, flows, active = 40000, 1000, 50
	var (
		dec     packet.Decoder
		d       packet.Decoded
		k       packet.FlowKey
		all     = map[packet.FlowKey]bool{}
		firstTh = map[packet.FlowKey]bool{}
		i       int
	)
	_, err := GenerateFrames(Options{Kind: KindIMIX, Packets: packets, Flows: flows, Active: active, Seed: 5}, func(_ int64, f []byte) error {
		dec.Decode(f, pcap.LinkTypeEthernet, &d)
		if _, ok := packet.FlowKeyInto(&k, &d); ok {
			all[k] = true
			if i < packets/10 {
				firstTh[k] = true
			}
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The window slides over (flows-active) flows in the whole trace, so a
	// tenth of it sees the window plus a tenth of the slide.
	if max := active + (flows-active)/10 + 10; len(firstTh) > max {
		t.Fatalf("first tenth of the trace holds %d flows, want at most %d", len(firstTh), max)
	}
	if len(all) < flows*9/10 {
		t.Fatalf("whole trace holds %d flows, want about %d", len(all), flows)
	}
	if _, err := GenerateFrames(Options{Kind: KindIMIX, Packets: 10, Active: -1}, func(int64, []byte) error { return nil }); err == nil {
		t.Fatalf("negative Active: got no error")
	}
}
