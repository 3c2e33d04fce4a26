package groundtruth

// KnownBad lists the checks the current analyser is known to fail, keyed
// "source/case/proto/point:check" with path.Match patterns (check is count,
// network, server, class or tiers), each with what was seen. The test logs
// them instead of failing; `make groundtruth` marks them known-bad and
// still exits non-zero. Empty it as issue 11 section 1 lands: a stale entry
// hides a regression, and the test logs every entry that failed nowhere.
//
// With the delay line on threads of its own (148aaf6: its holds' p99
// lateness 14.7 ms -> 1.3 ms), three full runs on the 2-CPU machine (load
// 0.6-2) passed 144, 136 and 129 rows of 154. Entries that failed in none
// of that day's nine runs (three tables and five TestGroundTruth with the
// new line, one table with the old) were removed: slow-app's class,
// slow-app-300's server part, slow-net's class, both-slow, loss's network
// part, nat, and the front ends' server part and class. The rest is what
// a passive analyser cannot see on these paths (docs/validation.md): an
// exchange whose ACK rides on the response offers no round-trip sample of
// its own, so its network part is the connection's, whose least sample
// may be a late one from the connection's start (a handshake or first
// bare ACK the line or the machine held up: 9.2 ms on a 2.3 ms path), and
// the path's jitter (1 ms a stage on slow-net) moves into the server part.
var KnownBad = map[string]string{
	"*/fast/*/*:class":                   "healthy exchanges classed slow_app (1 to 5 of 20 per row, mostly mysql): the ACK that rode on a 0.2-2 ms response is judged late against a handshake round trip the line held shorter",
	"*/fast/*/*:network":                 "sporadic (redis at the client point): network part 3.2 ms against a 2.2 ms truth, the server's 0.7 ms with it",
	"*/fast/*/*:server":                  "server part 1.1-1.5 ms off a 0.2-2.4 ms truth at the client and middle points: an exchange without its own round-trip sample takes the connection's, and the line's lateness on it moves into the server part",
	"*/slow-app/*/*:network":             "20 ms application inside the delayed-ACK timer: the ACK rides on the response, so the network part is the connection's least round trip, its handshake or first bare ACK (3-9 ms when the line or the machine held them up) against 2.2-2.5 ms p50 held for the exchanges",
	"*/slow-app/*/*:server":              "follows the network part's error (postgres 14.1 ms against 20.6 at the client point when the network part was 9.2 ms); once, redis at the middle point 25.3 against 22.1",
	"*/slow-app-300/*/*:network":         "300 ms application: the bare ACK at the delayed-ACK timer is judged as such, and the network part is the connection's least sample (3.4-4.4 ms against 2.3-2.9 held)",
	"*/slow-net/*/*:server":              "30 ms each way with 1 ms of jitter a stage: the exchange's own round trip is not on the wire (its ACK rides on the response), so the connection's (58.8-59.8 ms) is taken and the jitter, 1.1-2.3 ms, lands in a 0.3 ms server part",
	"*/loss/*/*:class":                   "one exchange next to the retransmission classed slow_net or slow_app although healthy (1 or 2 of 20 per row)",
	"*/loss/*/*:server":                  "the retransmitted exchange's server part 2.2-7.1 ms against 0.9-5.2 ms, and 1.5-3.2 ms at the client point of the loss row",
	"*/front-[13]/*/*:network":           "front end at the client and middle points: the network part is the connection's least sample, a late one from its start (7.7 ms against 2.8 once)",
	"dpdk/front-[13]/front/server:tiers": "dpdk only: tier times more than max(1 ms, 10 %) off the wire on 1 to 3 of 20 requests; the pcap source links them right, so it is the capture clock (tapvault's packet times against the kernel's)",
}
