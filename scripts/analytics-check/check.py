#!/usr/bin/env python3
"""Usage: check.py [-v] [-k] [--only SUBSTR] TAPVAULT_BINARY TRACES_DIR

Validates tapvault's in-stream analytics against tshark on the capture files
in TRACES_DIR (pcap/pcapng; reference answers in TRACES_DIR/expected/*.txt,
as made by tshark 4.0.17 with default prefs, -n).

For every trace that has TCP, HTTP or DNS (per its expected file) it imports
the trace into a fresh temporary store with TAPVAULT_BINARY, lists the
exchange records (messages --json), runs tshark (must be on PATH) for the
frame times of the HTTP/DNS request and response frames and the TCP analysis
flags, and prints one row per trace:

  http req/resp   ours vs tshark (http.request / http.response frames)
  http pairs      tshark responses with http.time, matched to one of our
                  records (same client/server, and resp_last_ns = response
                  frame time or req_last_ns = request frame time), and the
                  largest |latency_ns - http.time| over the matched pairs
  dns  q/r, pairs the same for DNS (dns.time, UDP and TCP)
  retrans         sum of "retrans" over our tcp connection records vs
                  tcp.analysis.retransmission (which in tshark 4.0 is also set
                  on every fast and spurious retransmission), and the % diff
  ooo, dupack     ours vs tshark, for information
  fix             FIX messages, ours vs tshark's fix.MsgType (every message
                  is in one record: msgtype of a request or a one-sided
                  record, resp_msgtype of an answer); tshark is told the
                  server ports of our fix records (-d tcp.port==N,fix), as
                  its heuristic alone misses sessions on other ports.
                  Run for traces named fix_* and those where we found FIX

Required checks (exit status 1 if any fails):
  1. HTTP request and response counts equal tshark's,
  2. every matched HTTP pair within 1 us of http.time,
  3. DNS query/response counts equal, every matched pair within 1 us of dns.time,
  4. retransmissions within 5% of tshark's count (0 when tshark has 0),
  5. FIX message counts per MsgType equal tshark's.
Failed checks are listed per trace after the table (FAIL lines).

Options:
  -v            per trace: unmatched pairs, pairs off by > 1 us, and the TCP
                connections whose retrans/ooo/dupack counts differ
  -k            keep the temporary stores (path printed)
  --only S      only traces whose file name contains S (repeatable)

Documented in docs/validation-tshark.md. Needs python3 >= 3.8 and tshark; no network.
"""

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict

TOL_NS = 1000          # 1 us
RETX_TOL = 0.05        # 5 %


def usage(msg=None):
    if msg:
        print("check.py: " + msg, file=sys.stderr)
    print(__doc__.splitlines()[0], file=sys.stderr)
    sys.exit(2)


def ns_from_epoch(s):
    """'1259023909.200698000' -> exact integer nanoseconds."""
    s = s.strip()
    if "." in s:
        a, b = s.split(".", 1)
    else:
        a, b = s, ""
    b = (b + "000000000")[:9]
    return int(a) * 1_000_000_000 + int(b)


def ns_from_secs(s):
    """tshark's http.time/dns.time (seconds, 9 decimals) -> ns."""
    return ns_from_epoch(s)


def norm_ip(s):
    try:
        return ipaddress.ip_address(s.split("%")[0]).compressed
    except ValueError:
        return s


def split_hostport(s):
    """'1.2.3.4:80' or '[::1]:80' -> ('1.2.3.4', 80)."""
    h, p = s.rsplit(":", 1)
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    return norm_ip(h), int(p)


def read_expected(path):
    counts, sections, cur = {}, defaultdict(list), None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("## "):
                cur = line[3:]
                continue
            if line.startswith("#") or not line.strip():
                continue
            if cur is None:
                k, _, v = line.partition("\t")
                try:
                    counts[k] = int(v)
                except ValueError:
                    counts[k] = v
            else:
                sections[cur].append(line)
    return counts, sections


# ---------------------------------------------------------------- tshark

TS_FIELDS = [
    "frame.number", "frame.time_epoch",
    "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
    "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "tcp.stream",
    "http.request", "http.response", "http.request_in", "http.time",
    "dns.flags.response", "dns.response_to", "dns.time", "dns.id",
    "tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
    "tcp.analysis.spurious_retransmission", "tcp.analysis.out_of_order",
    "tcp.analysis.duplicate_ack",
]
TS_FILTER = ("http.request or http.response or dns or tcp.analysis.retransmission"
             " or tcp.analysis.out_of_order or tcp.analysis.duplicate_ack")


def last(v):
    return v.split(",")[-1] if v else ""


def run_tshark(trace):
    cmd = ["tshark", "-n", "-r", trace, "-Y", TS_FILTER, "-T", "fields",
           "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in TS_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, check=False).stdout
    frames = {}
    for line in out.splitlines():
        v = line.split("\t")
        v += [""] * (len(TS_FIELDS) - len(v))
        r = dict(zip(TS_FIELDS, v))
        fr = {"n": int(r["frame.number"]), "t": ns_from_epoch(r["frame.time_epoch"])}
        src = last(r["ipv6.src"]) or last(r["ip.src"])
        dst = last(r["ipv6.dst"]) or last(r["ip.dst"])
        # for IP-in-IP pick the family of the innermost transport header: good
        # enough here (no trace tunnels one family in the other)
        sp = last(r["tcp.srcport"]) or last(r["udp.srcport"])
        dp = last(r["tcp.dstport"]) or last(r["udp.dstport"])
        fr["src"] = (norm_ip(src), int(sp) if sp else 0)
        fr["dst"] = (norm_ip(dst), int(dp) if dp else 0)
        fr["tcp"] = bool(r["tcp.srcport"])
        fr["stream"] = r["tcp.stream"]
        fr["http_req"] = bool(r["http.request"])
        fr["http_resp"] = bool(r["http.response"])
        fr["http_req_in"] = [int(x) for x in r["http.request_in"].split(",") if x]
        fr["http_time"] = [ns_from_secs(x) for x in r["http.time"].split(",") if x]
        resp_flags = [x for x in r["dns.flags.response"].split(",") if x]
        fr["dns_q"] = sum(1 for x in resp_flags if x in ("0", "False"))
        fr["dns_r"] = sum(1 for x in resp_flags if x in ("1", "True"))
        fr["dns_resp_to"] = [int(x) for x in r["dns.response_to"].split(",") if x]
        fr["dns_time"] = [ns_from_secs(x) for x in r["dns.time"].split(",") if x]
        fr["retx"] = bool(r["tcp.analysis.retransmission"])
        fr["fast"] = bool(r["tcp.analysis.fast_retransmission"])
        fr["spur"] = bool(r["tcp.analysis.spurious_retransmission"])
        fr["ooo"] = bool(r["tcp.analysis.out_of_order"])
        fr["dup"] = bool(r["tcp.analysis.duplicate_ack"])
        frames[fr["n"]] = fr
    return frames


def ts_fix_types(trace, ports):
    """tshark's FIX messages by MsgType, decoding the given TCP ports as FIX."""
    cmd = ["tshark", "-n", "-r", trace]
    for p in sorted(ports):
        cmd += ["-d", "tcp.port==%d,fix" % p]
    cmd += ["-Y", "fix", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-e", "fix.MsgType"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, check=False).stdout
    c = defaultdict(int)
    for line in out.splitlines():
        for t in line.split(","):
            if t:
                c[t] += 1
    return dict(c)


def ts_pairs(frames, kind):
    """tshark's timed pairs: (client, server, req_ns, resp_ns, time_ns, req_frame, resp_frame)."""
    pairs = []
    for fr in frames.values():
        if kind == "http":
            reqs, times = fr["http_req_in"], fr["http_time"]
        else:
            reqs, times = fr["dns_resp_to"], fr["dns_time"]
        for i, t in enumerate(times):
            rq = reqs[i] if i < len(reqs) else None
            rq_t = frames[rq]["t"] if rq in frames else fr["t"] - t
            pairs.append({"client": fr["dst"], "server": fr["src"], "req_t": rq_t,
                          "resp_t": fr["t"], "time": t, "req_frame": rq,
                          "resp_frame": fr["n"], "tcp": fr["tcp"]})
    return pairs


# ---------------------------------------------------------------- tapvault

def run_tapvault(binary, trace, store):
    imp = subprocess.run([binary, "import", "--data", store, trace],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if imp.returncode != 0:
        raise RuntimeError("import failed (%d): %s" % (imp.returncode, imp.stdout[-500:]))
    out = subprocess.run([binary, "messages", "--data", store, "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise RuntimeError("messages failed (%d): %s" % (out.returncode, out.stderr[-500:]))
    recs = []
    for line in out.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)   # Python ints are exact
            r["_c"] = split_hostport(r["client"])
            r["_s"] = split_hostport(r["server"])
            recs.append(r)
    return recs, imp.stdout


def match_pairs(pairs, recs):
    """Pair each tshark pair with one record (same endpoints, resp_last_ns ==
    response frame time, else req_last_ns == request frame time); only our
    records with both a request and a response take part. Returns
    [(pair, rec or None)]."""
    by_ep = defaultdict(list)
    for r in recs:
        if not (r["req_last_ns"] and r["resp_last_ns"]):
            continue  # ours is unpaired (no_request / no_response): not the same exchange
        by_ep[(r["_c"], r["_s"])].append(r)
    used, res = set(), []
    for p in sorted(pairs, key=lambda p: (p["resp_t"], p["resp_frame"])):
        cands = [r for r in by_ep.get((p["client"], p["server"]), []) if r["id"] not in used]
        m = next((r for r in cands if r["resp_last_ns"] == p["resp_t"]), None)
        if m is None:
            m = next((r for r in cands if r["req_last_ns"] == p["req_t"]), None)
        if m is not None:
            used.add(m["id"])
        res.append((p, m))
    return res


def conn_key(a, b):
    return tuple(sorted([a, b]))


# ---------------------------------------------------------------- main

def check_trace(binary, trace, exp_path, verbose, keep):
    counts, sections = read_expected(exp_path)
    row = {"trace": os.path.basename(trace), "fail": [], "notes": [], "detail": []}
    store = tempfile.mkdtemp(prefix="tv-acheck-")
    try:
        recs, imp_out = run_tapvault(binary, trace, os.path.join(store, "s"))
    finally:
        if keep:
            row["notes"].append("store kept: " + store)
        else:
            shutil.rmtree(store, ignore_errors=True)
    frames = run_tshark(trace)

    # Live tshark vs the reference file (same tshark version and prefs expected).
    live = {
        "http_requests": sum(1 for f in frames.values() if f["http_req"]),
        "http_responses": sum(1 for f in frames.values() if f["http_resp"]),
        "tcp_analysis_retransmission": sum(1 for f in frames.values() if f["retx"]),
        "tcp_analysis_out_of_order": sum(1 for f in frames.values() if f["ooo"]),
        "tcp_analysis_duplicate_ack": sum(1 for f in frames.values() if f["dup"]),
    }
    for k, v in live.items():
        if counts.get(k) != v:
            row["notes"].append("live tshark %s=%d, expected file %s" % (k, v, counts.get(k)))

    http = [r for r in recs if r["proto"] == "http"]
    dns = [r for r in recs if r["proto"] == "dns"]
    tcp = [r for r in recs if r["proto"] == "tcp"]
    # tshark 4.0 does not count SSDP NOTIFY (HTTP over UDP 1900) as
    # http.request (it does count M-SEARCH); tapvault records both.
    row["http_req"] = (sum(1 for r in http if r["req_last_ns"]
                           and not (r.get("transport") == "udp" and r.get("method") == "NOTIFY")),
                       counts.get("http_requests", 0))
    row["http_resp"] = (sum(1 for r in http if r["resp_last_ns"]), counts.get("http_responses", 0))
    row["dns_q"] = (sum(1 for r in dns if r["req_last_ns"]), counts.get("dns_queries", 0))
    row["dns_r"] = (sum(1 for r in dns if r["resp_last_ns"]), counts.get("dns_responses", 0))
    for k, what in (("http_req", "HTTP requests"), ("http_resp", "HTTP responses"),
                    ("dns_q", "DNS queries"), ("dns_r", "DNS responses")):
        if row[k][0] != row[k][1]:
            row["fail"].append("%s: ours %d, tshark %d" % (what, row[k][0], row[k][1]))

    for kind, mine in (("http", http), ("dns", dns)):
        pairs = ts_pairs(frames, kind)
        matched = match_pairs(pairs, mine)
        n_ok = sum(1 for _, m in matched if m is not None)
        maxd, bad = None, 0
        for p, m in matched:
            if m is None:
                if verbose:
                    row["detail"].append("%s: tshark pair req frame %s -> resp frame %d (%s %.6fs) not matched"
                                         % (kind, p["req_frame"], p["resp_frame"],
                                            "tcp" if p["tcp"] else "udp", p["time"] / 1e9))
                continue
            d = (m["resp_last_ns"] - m["req_last_ns"]) - p["time"]
            if maxd is None or abs(d) > maxd:
                maxd = abs(d)
            if abs(d) > TOL_NS:
                bad += 1
                row["detail"].append(
                    "%s: frames %s->%d %s: tshark %d ns, ours %d ns (Δ %+d ns; req_last %+d, resp_last %+d vs frame times) id %s"
                    % (kind, p["req_frame"], p["resp_frame"], "tcp" if p["tcp"] else "udp",
                       p["time"], m["resp_last_ns"] - m["req_last_ns"], d,
                       m["req_last_ns"] - p["req_t"], m["resp_last_ns"] - p["resp_t"], m["id"]))
        row[kind + "_pairs"] = (n_ok, len(pairs))
        row[kind + "_maxd"] = maxd
        if bad:
            row["fail"].append("%s: %d matched pairs off by more than 1 us" % (kind, bad))

    fix = [r for r in recs if r["proto"] == "fix"]
    row["fix"] = None
    if fix or os.path.basename(trace).startswith("fix_"):
        ours = defaultdict(int)
        for r in fix:
            for k in ("msgtype", "resp_msgtype"):
                if r.get(k):
                    ours[r[k]] += 1
        theirs = ts_fix_types(trace, {r["_s"][1] for r in fix})
        row["fix"] = (sum(ours.values()), sum(theirs.values()))
        if dict(ours) != theirs:
            diff = ["%s %d/%d" % (t, ours.get(t, 0), theirs.get(t, 0))
                    for t in sorted(set(ours) | set(theirs)) if ours.get(t, 0) != theirs.get(t, 0)]
            row["fail"].append("FIX MsgType counts (ours/tshark): " + ", ".join(diff))
        if verbose:
            row["detail"].append("fix MsgType ours/tshark: " + ", ".join(
                "%s %d/%d" % (t, ours.get(t, 0), theirs.get(t, 0)) for t in sorted(set(ours) | set(theirs))))

    ours_retx = sum(int(r.get("retrans", 0)) for r in tcp)
    ours_ooo = sum(int(r.get("ooo", 0)) for r in tcp)
    ours_dup = sum(int(r.get("dupack", 0)) for r in tcp)
    ts_retx = counts.get("tcp_analysis_retransmission", 0)
    row["retx"] = (ours_retx, ts_retx, counts.get("tcp_analysis_fast_retransmission", 0),
                   counts.get("tcp_analysis_spurious_retransmission", 0))
    row["ooo"] = (ours_ooo, counts.get("tcp_analysis_out_of_order", 0))
    row["dup"] = (ours_dup, counts.get("tcp_analysis_duplicate_ack", 0))
    if ts_retx:
        row["retx_pct"] = 100.0 * (ours_retx - ts_retx) / ts_retx
        ok = abs(ours_retx - ts_retx) <= RETX_TOL * ts_retx
    else:
        row["retx_pct"] = 0.0 if ours_retx == 0 else float("inf")
        ok = ours_retx == 0
    if not ok:
        row["fail"].append("retransmissions: ours %d, tshark %d (%+.1f%%)" % (ours_retx, ts_retx, row["retx_pct"]))

    if verbose:
        # Per connection: tshark flags grouped by endpoints vs our tcp records.
        ts_conn = defaultdict(lambda: [0, 0, 0, []])
        for f in frames.values():
            if not f["tcp"]:
                continue
            c = ts_conn[conn_key(f["src"], f["dst"])]
            if f["retx"]:
                c[0] += 1
                c[3].append(f["n"])
            c[1] += f["ooo"]
            c[2] += f["dup"]
        our_conn = defaultdict(lambda: [0, 0, 0])
        for r in tcp:
            c = our_conn[conn_key(r["_c"], r["_s"])]
            c[0] += int(r.get("retrans", 0))
            c[1] += int(r.get("ooo", 0))
            c[2] += int(r.get("dupack", 0))
        for k in sorted(set(ts_conn) | set(our_conn)):
            t, o = ts_conn.get(k, [0, 0, 0, []]), our_conn.get(k, [0, 0, 0])
            if t[:3] != o:
                row["detail"].append("tcp %s:%d <-> %s:%d: retrans ours %d tshark %d, ooo %d/%d, dupack %d/%d; tshark retrans frames %s"
                                     % (k[0][0], k[0][1], k[1][0], k[1][1], o[0], t[0], o[1], t[1],
                                        o[2], t[2], " ".join(map(str, t[3][:40])) + (" ..." if len(t[3]) > 40 else "")))
    return row


def fmt_d(v):
    return "-" if v is None else str(v)


def main(argv):
    verbose = keep = False
    only, args = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "-v":
            verbose = True
        elif a == "-k":
            keep = True
        elif a == "--only":
            i += 1
            if i >= len(argv):
                usage("--only needs a value")
            only.append(argv[i])
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        elif a.startswith("-"):
            usage("unknown option " + a)
        else:
            args.append(a)
        i += 1
    if len(args) != 2:
        usage()
    binary, tdir = os.path.abspath(args[0]), args[1]
    if not os.access(binary, os.X_OK):
        usage("not an executable: " + binary)
    if shutil.which("tshark") is None:
        usage("tshark not found on PATH")
    traces = sorted(f for f in os.listdir(tdir) if f.endswith((".pcap", ".pcapng")))
    if only:
        traces = [t for t in traces if any(s in t for s in only)]

    hdr = ("%-46s %11s %11s %9s %9s %9s %9s %9s %17s %8s %9s %9s %9s"
           % ("trace", "http req", "http resp", "h.pairs", "h.max|Δ|", "dns q", "dns r",
              "d.pairs", "retx ours/ts", "retx %", "ooo", "dupack", "fix"))
    print("# ours/tshark; pairs = matched/tshark pairs with a time; max |Δ| in ns")
    print(hdr)
    rows, skipped = [], []
    for t in traces:
        exp = os.path.join(tdir, "expected", os.path.splitext(t)[0] + ".txt")
        if not os.path.exists(exp):
            skipped.append(t + " (no expected file)")
            continue
        counts, _ = read_expected(exp)
        if not (counts.get("has_tcp") or counts.get("http_requests") or counts.get("http_responses")
                or counts.get("dns_queries") or counts.get("dns_responses")):
            skipped.append(t)
            continue
        try:
            row = check_trace(binary, os.path.join(tdir, t), exp, verbose, keep)
        except Exception as e:  # noqa: BLE001 - report and go on
            print("%-46s ERROR %s" % (t, e))
            rows.append({"trace": t, "fail": ["error: %s" % e], "notes": [], "detail": []})
            continue
        rows.append(row)
        pct = row["retx_pct"]
        print("%-46s %11s %11s %9s %9s %9s %9s %9s %17s %8s %9s %9s %9s%s" % (
            t,
            "%d/%d" % row["http_req"], "%d/%d" % row["http_resp"],
            "%d/%d" % row["http_pairs"], fmt_d(row["http_maxd"]),
            "%d/%d" % row["dns_q"], "%d/%d" % row["dns_r"],
            "%d/%d" % row["dns_pairs"],
            "%d/%d" % row["retx"][:2],
            ("%+.1f" % pct) if pct != float("inf") else "inf",
            "%d/%d" % row["ooo"], "%d/%d" % row["dup"],
            "%d/%d" % row["fix"] if row["fix"] else "-",
            "  FAIL" if row["fail"] else ""))
        sys.stdout.flush()

    print()
    for r in rows:
        for f in r["fail"]:
            print("FAIL %s: %s" % (r["trace"], f))
        for n in r["notes"]:
            print("NOTE %s: %s" % (r["trace"], n))
        for d in r["detail"]:
            print("  %s: %s" % (r["trace"], d))
    ok_rows = [r for r in rows if "retx" in r]
    tot = lambda k, i: sum(r[k][i] for r in ok_rows)  # noqa: E731
    print()
    print("summary: %d traces checked, %d skipped (no TCP/HTTP/DNS): %s"
          % (len(rows), len(skipped), ", ".join(skipped)))
    print("  http requests %d/%d, responses %d/%d, pairs matched %d/%d, max |Δ| %s ns"
          % (tot("http_req", 0), tot("http_req", 1), tot("http_resp", 0), tot("http_resp", 1),
             tot("http_pairs", 0), tot("http_pairs", 1),
             fmt_d(max((r["http_maxd"] for r in ok_rows if r["http_maxd"] is not None), default=None))))
    print("  dns queries %d/%d, responses %d/%d, pairs matched %d/%d, max |Δ| %s ns"
          % (tot("dns_q", 0), tot("dns_q", 1), tot("dns_r", 0), tot("dns_r", 1),
             tot("dns_pairs", 0), tot("dns_pairs", 1),
             fmt_d(max((r["dns_maxd"] for r in ok_rows if r["dns_maxd"] is not None), default=None))))
    print("  retransmissions ours %d, tshark tcp.analysis.retransmission %d (of which fast %d, spurious %d);"
          " out-of-order %d/%d; dup ACKs %d/%d"
          % (tot("retx", 0), tot("retx", 1), tot("retx", 2), tot("retx", 3),
             tot("ooo", 0), tot("ooo", 1), tot("dup", 0), tot("dup", 1)))
    fixed = [r["fix"] for r in ok_rows if r.get("fix")]
    print("  FIX messages ours %d, tshark fix.MsgType %d (%d traces)"
          % (sum(f[0] for f in fixed), sum(f[1] for f in fixed), len(fixed)))
    nfail = sum(1 for r in rows if r["fail"])
    print("  %d traces with failed checks" % nfail)
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
