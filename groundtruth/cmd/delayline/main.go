// Command delayline runs one stage of the ground-truth harness's delay line
// by hand: an L2 bridge between two interfaces that holds every frame for a
// set time per direction (package groundtruth, Link). It needs root, and
// both interfaces up with checksum offload off on the hosts that send.
//
//	ip netns exec M go run ./groundtruth/cmd/delayline --a mc --b xa --delay 15ms --jitter 1ms
//
// On SIGINT or SIGTERM it stops and prints what it did.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"tapvault/groundtruth"
)

func main() {
	a := flag.String("a", "", "first interface (the client's side)")
	b := flag.String("b", "", "second interface (the server's side)")
	netns := flag.String("netns", "", "network namespace of both interfaces (default: this process's)")
	delay := flag.Duration("delay", 0, "hold in both directions")
	ab := flag.Duration("delay-ab", -1, "hold from a to b (default --delay)")
	ba := flag.Duration("delay-ba", -1, "hold from b to a (default --delay)")
	jitter := flag.Duration("jitter", 0, "each hold is the delay ± up to this, order kept")
	drop := flag.Int("drop", 0, "drop the Nth TCP segment with data from a to b, once")
	flag.Parse()
	if *a == "" || *b == "" {
		fmt.Fprintln(os.Stderr, "delayline: --a and --b are required")
		os.Exit(2)
	}
	cfg := groundtruth.LinkConfig{AB: *delay, BA: *delay, Jitter: *jitter, DropAB: *drop}
	if *ab >= 0 {
		cfg.AB = *ab
	}
	if *ba >= 0 {
		cfg.BA = *ba
	}
	l, err := groundtruth.NewLink(*netns, *a, *b, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "delayline: %v\n", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	l.Close()
	s := l.Stats()
	for dir, name := range []string{*a + " -> " + *b, *b + " -> " + *a} {
		h := slices.Clone(s.Holds[dir])
		slices.Sort(h)
		p50 := time.Duration(0)
		if len(h) > 0 {
			p50 = h[(len(h)-1)/2]
		}
		fmt.Printf("%s: %d frames, hold p50 %v\n", name, s.Frames[dir], p50)
	}
	if d := s.Drop; d != nil {
		fmt.Printf("dropped %s -> %s seq %d at %s; retransmitted after %v\n", d.Src, d.Dst, d.Seq, d.At.Format(time.RFC3339Nano), d.RetransAt.Sub(d.At))
	}
	if s.Errors > 0 {
		fmt.Printf("%d frames could not be sent\n", s.Errors)
	}
}
