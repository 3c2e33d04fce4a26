package analytics_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"

	"tapvault/analytics"
	"tapvault/dataplane"
	"tapvault/pcap"
)

var update = flag.Bool("update", false, "rewrite the golden record files under testdata/golden")

// goldenRecord is the JSON form of a Record in the golden files: every
// field, times as ns since the epoch, flags by name, packets as
// block:ordinal (with one 1 MiB block per fixture, the ordinal is the
// packet's 0-based index in the pcap).
type goldenRecord struct {
	Proto      string            `json:"proto"`
	Transport  uint8             `json:"transport"`
	VLAN       uint16            `json:"vlan,omitempty"`
	Client     string            `json:"client"`
	Server     string            `json:"server"`
	ReqFirst   int64             `json:"req_first"`
	ReqLast    int64             `json:"req_last"`
	RespFirst  int64             `json:"resp_first"`
	RespLast   int64             `json:"resp_last"`
	ServerAck  int64             `json:"server_ack"`
	ClientAck  int64             `json:"client_ack"`
	Network    int64             `json:"network"`
	ServerTime int64             `json:"server_time"`
	Transfer   int64             `json:"transfer"`
	ClientNet  int64             `json:"client_net"`
	RTT        int64             `json:"rtt"`
	Class      string            `json:"class"`
	NetFrom    string            `json:"net_from,omitempty"`
	Confidence string            `json:"confidence,omitempty"`
	Near       string            `json:"near,omitempty"`
	Why        string            `json:"why,omitempty"`
	ReqBytes   int64             `json:"req_bytes"`
	RespBytes  int64             `json:"resp_bytes"`
	ReqPkts    int32             `json:"req_pkts"`
	RespPkts   int32             `json:"resp_pkts"`
	Flags      []string          `json:"flags,omitempty"`
	Fields     map[string]string `json:"fields,omitempty"`
	Packets    []string          `json:"packets"`
}

func toGolden(r *analytics.Record) goldenRecord {
	g := goldenRecord{
		Proto: r.Proto, Transport: r.Transport, VLAN: r.VLAN, Client: r.Client.String(), Server: r.Server.String(),
		ReqFirst: r.ReqFirst, ReqLast: r.ReqLast, RespFirst: r.RespFirst, RespLast: r.RespLast,
		ServerAck: r.ServerAck, ClientAck: r.ClientAck,
		Network: r.Network, ServerTime: r.ServerTime, Transfer: r.Transfer, ClientNet: r.ClientNet, RTT: r.RTT,
		Class: r.Class, ReqBytes: r.ReqBytes, RespBytes: r.RespBytes, ReqPkts: r.ReqPkts, RespPkts: r.RespPkts,
		Packets: []string{},
		NetFrom: r.NetFrom().String(), Confidence: r.Confidence().String(), Near: r.Near().String(), Why: r.Why().String(),
	}
	var ev analytics.Record
	ev.SetEvidence(7, 3, 3, 7) // every evidence bit
	rest := r.Flags &^ ev.Flags
	for _, f := range analytics.FlagNames {
		if r.Flags&f.Bit != 0 {
			g.Flags = append(g.Flags, f.Name)
			rest &^= f.Bit
		}
	}
	if rest != 0 {
		g.Flags = append(g.Flags, fmt.Sprintf("%#x", rest))
	}
	if len(r.Fields) > 0 {
		g.Fields = make(map[string]string, len(r.Fields))
		for _, f := range r.Fields {
			g.Fields[f.Key] = f.Value()
		}
	}
	for _, p := range r.Packets {
		g.Packets = append(g.Packets, fmt.Sprintf("%d:%d", p.Block, p.Ord))
	}
	return g
}

// pcapSource hands over the frames of a pcap file, with its link type.
type pcapSource struct {
	frameSource
	linkType uint16
}

func (s *pcapSource) Recv(b *dataplane.Burst) (int, error) {
	n, err := s.frameSource.Recv(b)
	for i := 0; i < n; i++ {
		b.Pkts[i].LinkType = s.linkType
	}
	return n, err
}

// readPcap loads a pcap file (Ethernet or Linux cooked).
func readPcap(t *testing.T, path string) *pcapSource {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	src := &pcapSource{linkType: uint16(r.LinkType())}
	switch src.linkType {
	case pcap.LinkTypeEthernet, pcap.LinkTypeLinuxSLL:
	default:
		t.Fatalf("%s: link type %v, want Ethernet or Linux cooked", path, r.LinkType())
	}
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		src.ts = append(src.ts, ci.Timestamp.UnixNano())
		src.frames = append(src.frames, data)
	}
	return src
}

// TestGoldenRecords runs each fixture capture under testdata/golden (real
// traffic; see testdata/README.md) through a worker and its Analyzer and
// compares the records with <proto>.json beside it. go test -run
// TestGoldenRecords -update rewrites the JSON files; check the diff (and
// the times against tshark) before committing one.
func TestGoldenRecords(t *testing.T) {
	pcaps, err := filepath.Glob(filepath.Join("testdata", "golden", "*.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	// Every decoder the registry has must have a fixture.
	have := map[string]bool{}
	for _, p := range pcaps {
		have[strings.TrimSuffix(filepath.Base(p), ".pcap")] = true
	}
	for _, d := range analytics.Decoders() {
		if !have[d.Name] {
			t.Errorf("decoder %q has no testdata/golden/%s.pcap", d.Name, d.Name)
		}
	}
	for _, p := range pcaps {
		proto := strings.TrimSuffix(filepath.Base(p), ".pcap")
		t.Run(proto, func(t *testing.T) {
			recs, _ := analyze(t, readPcap(t, p), analytics.DefaultConfig())
			var got []goldenRecord
			n := 0
			for _, r := range recs {
				got = append(got, toGolden(r))
				if r.Proto == proto {
					n++
				}
			}
			if n == 0 {
				t.Errorf("no %s records from %s", proto, p)
			}
			// Emission order follows timers and closes; sort for a stable file.
			slices.SortStableFunc(got, func(a, b goldenRecord) int {
				if c := cmpInt(a.ReqFirst, b.ReqFirst); c != 0 {
					return c
				}
				if c := cmpInt(a.RespFirst, b.RespFirst); c != 0 {
					return c
				}
				if c := strings.Compare(a.Proto, b.Proto); c != 0 {
					return c
				}
				return strings.Compare(a.Client+a.Server, b.Client+b.Server)
			})
			js, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			js = append(js, '\n')
			golden := strings.TrimSuffix(p, ".pcap") + ".json"
			if *update {
				if err := os.WriteFile(golden, js, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(js, want) {
				t.Errorf("records differ from %s (run with -update to rewrite it, then check the diff):\n%s", golden, firstDiff(js, want))
			}
		})
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// firstDiff shows the first differing line of got and want with a little
// context.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got  %s\n want %s", i+1, gl, wl)
		}
	}
	return "(no line differs)"
}
