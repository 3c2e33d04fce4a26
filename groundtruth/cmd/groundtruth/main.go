// Command groundtruth runs the ground-truth harness (package groundtruth)
// and prints the table of injected against measured values. It exits 1 when
// any check fails, known-bad ones included, and 2 when it cannot run.
//
//	go build -o bin/tapvault ./cmd/tapvault
//	go run ./groundtruth/cmd/groundtruth --tapvault bin/tapvault
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"tapvault/groundtruth"
)

func main() {
	tapvault := flag.String("tapvault", "bin/tapvault", "tapvault binary built with DPDK")
	exchanges := flag.Int("n", groundtruth.Exchanges, "exchanges per client and case")
	only := flag.String("cases", "", "comma-separated case names (default: all)")
	keep := flag.Bool("keep", false, "keep the temporary directory (stores, database files)")
	flag.Parse()

	o := groundtruth.Options{Tapvault: *tapvault, Exchanges: *exchanges, Log: os.Stderr, Keep: *keep}
	if *only != "" {
		for _, name := range strings.Split(*only, ",") {
			found := false
			for _, c := range groundtruth.Cases {
				if c.Name == name {
					o.Cases, found = append(o.Cases, c), true
				}
			}
			if !found {
				fmt.Fprintf(os.Stderr, "groundtruth: unknown case %q\n", name)
				os.Exit(2)
			}
		}
	}
	rep, err := groundtruth.Run(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "groundtruth: %v\n", err)
		if errors.Is(err, groundtruth.ErrSkip) {
			os.Exit(2)
		}
		os.Exit(2)
	}
	rep.WriteTable(os.Stdout)
	if rep.Dir != "" {
		fmt.Printf("kept %s\n", rep.Dir)
	}
	if rep.Failed() {
		fmt.Println("groundtruth: FAIL (known-bad checks are listed in groundtruth/knownbad.go)")
		os.Exit(1)
	}
	fmt.Println("groundtruth: PASS")
}
