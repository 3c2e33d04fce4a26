package analytics

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestHTTPCompact checks that dropping the header lines parseHeaders passes
// over (compact, for blocks buffered over many chunks) changes nothing:
// long header blocks, whose fields that matter sit among others, folded,
// after lines without a colon, or in a fold after such a line, parse the
// same cut into chunks of every size as whole (parsed in place, never
// compacted).
func TestHTTPCompact(t *testing.T) {
	filler := func(n int) string {
		var sb strings.Builder
		for i := 0; sb.Len() < n; i++ {
			switch i % 5 {
			case 0:
				fmt.Fprintf(&sb, "X-Filler-%d: %s\r\n", i, strings.Repeat("v", 40+i%37))
			case 1:
				fmt.Fprintf(&sb, "just some text without a colon %d\r\n", i)
			case 2:
				fmt.Fprintf(&sb, "X-Folded-%d: a\r\n  b %d\r\n\tc\r\n", i, i)
			case 3:
				fmt.Fprintf(&sb, "no colon here %d\r\n Content-Length: 999\r\n", i) // a fold: name "no colon here N Content-Length"
			case 4:
				fmt.Fprintf(&sb, "Content-Lengthy: 7\r\nHostname: not.this\r\n: empty name\r\nTransfer-Encodings: chunked\r\n")
			}
		}
		return sb.String()
	}
	for _, n := range httpHeadNames {
		if len(n) > httpHeadNameMax {
			t.Fatalf("httpHeadNameMax %d, but %q is %d bytes", httpHeadNameMax, n, len(n))
		}
	}
	long := filler(3000)
	req := func(fields string) string { return "POST /upload HTTP/1.1\r\n" + long + fields + filler(1500) + "\r\n" }
	resp := func(fields string) string { return "HTTP/1.1 200 OK\r\n" + long + fields + filler(1200) + "\r\n" }
	body := "0123456789"
	cases := []struct {
		name  string
		steps []htStep
	}{
		{"fields-amid", []htStep{htCli(req("Host: Example.COM\r\nContent-Length: 10\r\n") + body),
			htSrv(resp("Content-Type: text/plain\r\nContent-Length: 3\r\n") + "abc")}},
		{"folded-fields", []htStep{htCli(req("Host:\r\n  folded.example\r\nContent-Length:\r\n 10\r\n") + body),
			htSrv(resp("content-type: text/html;\r\n\tcharset=utf-8\r\nTransfer-Encoding: gzip,\r\n chunked\r\n") + "3\r\nabc\r\n0\r\n\r\n")}},
		{"conflicting-lengths", []htStep{htCli(req("Content-Length: 10\r\nContent-Length: 11\r\n") + body),
			htCli("GET /next HTTP/1.1\r\nHost: h\r\n\r\n"), htSrv("HTTP/1.1 204 No Content\r\n\r\n")}},
		{"no-fields", []htStep{htCli(req("")), htSrv(resp("Content-Length: 0\r\n"))}},
		{"bare-lf", []htStep{htCli(strings.ReplaceAll(req("Host: lf.example\r\nContent-Length: 10\r\n"), "\r\n", "\n") + body),
			htSrv(strings.ReplaceAll(resp("Content-Length: 2\r\n"), "\r\n", "\n") + "ok")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			whole, _ := htRun(t, newHTTP, tc.steps, nil, nil)
			want := htSummary(whole)
			if len(want) == 0 {
				t.Fatal("no exchanges parsed whole")
			}
			cuts := map[string]func(int) []int{}
			for _, k := range []int{1, 2, 3, 7, 64, 100, 511, 1024, 1460} {
				cuts[fmt.Sprint("every", k)] = htCutEvery(k)
			}
			for i := range 8 {
				cuts[fmt.Sprint("random", i)] = htCutRandom(int64(i))
			}
			for k := 1; k < 6000; k += 97 {
				cuts[fmt.Sprint("at", k)] = htCutAt(k)
			}
			for name, cut := range cuts {
				st, _ := htRun(t, newHTTP, tc.steps, nil, cut)
				if got := htSummary(st); !slices.Equal(got, want) {
					t.Fatalf("cut %s: got\n  %s\nwant (whole)\n  %s", name, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
				}
			}
		})
	}
}
