package groundtruth

// KnownBad lists the checks the current analyser is known to fail, keyed
// "source/case/proto/point:check" with path.Match patterns (check is count,
// network, server, class or tiers), each with what was seen. The test logs
// them instead of failing; `make groundtruth` marks them known-bad and
// still exits non-zero. Empty it as issue 11 section 1 lands: a stale entry
// hides a regression, and the test logs every entry that failed nowhere.
//
// Issue 11's split landed (analytics/breakdown.go): in a full run at load
// 9-11 after it, 46 of 77 pcap rows and 37 of 77 dpdk rows passed (45 and
// 39 before), and the remaining misses follow the machine's load (truths
// of 12-14 ms for a 2 ms path, the delay line stalling). Each entry is to
// be re-checked on a quiet machine before it is removed.
//
// Seen in three full runs on the 2-CPU development machine at load 10-12
// (docs/validation.md), in both sources unless said otherwise: the pcap
// source (exact kernel timestamps) fails the same checks as the DPDK one,
// so these are the analyser's, not the capture clock's. Entries are per
// case and check rather than per row because on a loaded machine the
// kernel's ACK timing moves from run to run, and with it which protocol
// and point of a case trips.
var KnownBad = map[string]string{
	// Delayed ACKs: an ACK that rides on the response, or a bare ACK sent at
	// the delayed-ACK timer, is taken for the network's answer.
	"*/fast/*/*:class":                   "healthy exchanges classed slow_net or slow_app (2 to 12 of 20 per row): ACKs held by the delayed-ACK timer or by scheduling are judged late against the handshake RTT",
	"*/fast/*/*:network":                 "network part more than 1 ms off a 2-5 ms round trip at the client and middle points (0.1 to 13.5 ms seen): it is the server's ACK or response time, not the round trip",
	"*/fast/*/*:server":                  "server part more than 1 ms off at the client and middle points; postgres 10-17 ms against a 2-6 ms truth (the network part's error moves into it)",
	"*/slow-app/*/*:network":             "20 ms application inside the delayed-ACK timer: the ACK rides on the response, and the network part is not the round trip (up to 16 ms against 2-8 ms)",
	"*/slow-app/*/*:server":              "follows the network part's error: 3-6 ms off at the client and middle points",
	"*/slow-app/*/*:class":               "a few slow_net or healthy among slow_app exchanges (1 to 9 of 20)",
	"*/slow-app-300/*/*:network":         "300 ms application: the server's bare ACK comes at the delayed-ACK timer (12-44 ms after the request) and is taken as the network's round trip (2-9 ms)",
	"*/slow-app-300/*/*:server":          "follows the network part: latency minus the timer-held ACK (redis 270 ms against 302 ms)",
	"*/slow-net/*/*:server":              "30 ms each way: server part 1.5-3.5 ms against a ~1 ms truth at the client and middle points",
	"*/slow-net/*/*:class":               "sporadic (once, dpdk, postgres at the middle point): a slow_net exchange classed otherwise",
	"*/both-slow/*/*:network":            "sporadic (once, postgres at the middle point): network part more than 10 % off",
	"*/both-slow/*/*:class":              "sporadic under load (19 of 20, after issue 11's split): one exchange whose truth network share (the delay line stalled, 49.9 ms p50 against 40 asked) exceeded its server share",
	"*/loss/*/*:class":                   "exchanges next to the retransmission classed slow_net or slow_app although healthy (1 to 5 of 20 per row)",
	"*/loss/*/*:network":                 "network part more than 1 ms off the 1-3 ms round trip at the client and middle points",
	"*/loss/*/*:server":                  "server part more than 1 ms off; the retransmitted exchange's server part 2.5-9 ms against under 1 ms",
	"*/nat/*/*:class":                    "behind NAT, 1 to 3 of 20 slow_app exchanges classed slow_net at every point",
	"*/nat/*/*:network":                  "network part more than 1 ms off the 5-10 ms round trip at the client and middle points",
	"*/nat/*/*:server":                   "server part more than 10 % off at the client point (dpdk)",
	"*/front-[13]/*/*:network":           "front end: network part more than 1 ms off at the client and middle points",
	"*/front-[13]/*/*:server":            "front end: server part more than 10 % off at the client and middle points (front-3: 67 ms against 77 ms)",
	"*/front-[13]/*/*:class":             "front end and its backend calls: slow_net on some backend calls (3 to 6 per run) and on a front exchange",
	"dpdk/front-[13]/front/server:tiers": "dpdk only: tier times more than max(1 ms, 10 %) off the wire on 1 to 8 of 20 requests; the pcap source links them right, so it is the capture clock (tapvault's packet times against the kernel's: p99 3.7-8.7 ms, max 27-47 ms)",
}
