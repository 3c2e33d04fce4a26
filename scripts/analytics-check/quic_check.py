#!/usr/bin/env python3
"""Usage: quic_check.py [-v] [--port P]... TAPVAULT_BINARY CAPTURE...

Compares the QUIC records of tapvault with tshark on capture files: for
every ClientHello that tshark decodes in a QUIC Initial (the first per client
endpoint), the record of that client endpoint must carry the same SNI
(tls.handshake.extensions_server_name) and ALPN list
(tls.handshake.extensions_alpn_str, comma-separated, in order).

Each capture is imported into a fresh temporary store (tapvault import,
--decoder-port P=quic for every --port given, beside the default 443, 853
and 8443), its quic records listed (messages --json proto == quic), and one
row printed per file: ClientHellos tshark decodes, our quic records, those
with an SNI, and the matches. Exit status 1 if any tshark ClientHello has no
record with the same SNI and ALPN.

  -v        list the mismatches
  --port P  another UDP port to decode as QUIC (repeatable; nDPI's test
            captures use 4433, 4434 and 4443)

Needs python3 >= 3.8 and tshark (checked with 4.0.17); no network. Used to
check the decoder on nDPI's 36 QUIC captures (docs/analytics.md).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict


def usage(msg=None):
    if msg:
        print("quic_check.py: " + msg, file=sys.stderr)
    print(__doc__.splitlines()[0], file=sys.stderr)
    sys.exit(2)


def endpoint(ip, port):
    return "[%s]:%s" % (ip, port) if ":" in ip else "%s:%s" % (ip, port)


def tshark_hellos(path):
    """First ClientHello per client endpoint: {endpoint: (sni, alpn)}."""
    out = subprocess.run(
        ["tshark", "-n", "-r", path, "-Y", "quic && tls.handshake.type == 1", "-T", "fields",
         "-E", "separator=\t", "-e", "ip.src", "-e", "ipv6.src", "-e", "udp.srcport",
         "-e", "tls.handshake.extensions_server_name", "-e", "tls.handshake.extensions_alpn_str"],
        capture_output=True, text=True, check=False).stdout
    seen = {}
    for line in out.splitlines():
        ip4, ip6, port, sni, alpn = (line.split("\t") + [""] * 5)[:5]
        ip = ip4 or ip6
        if port:
            seen.setdefault(endpoint(ip, port), (sni, alpn))
    return seen


def our_records(tv, path, ports):
    """Our quic records: {client endpoint: [(sni, alpn), ...]}."""
    d = tempfile.mkdtemp(prefix="quic-check-")
    try:
        args = [tv, "import", "--data", d]
        for p in ports:
            args += ["--decoder-port", "%s=quic" % p]
        subprocess.run(args + [path], capture_output=True, text=True, check=True)
        out = subprocess.run([tv, "messages", "--data", d, "--json", "proto == quic"],
                             capture_output=True, text=True, check=True).stdout
    finally:
        shutil.rmtree(d, ignore_errors=True)
    recs = defaultdict(list)
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        recs[r["client"]].append((r.get("sni", ""), r.get("alpn", "")))
    return recs


def main(argv):
    verbose, ports, rest = False, [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "-v":
            verbose = True
        elif a == "--port":
            i += 1
            if i >= len(argv):
                usage("--port needs a value")
            ports.append(argv[i])
        elif a.startswith("-"):
            usage("unknown option " + a)
        else:
            rest.append(a)
        i += 1
    if len(rest) < 2:
        usage()
    tv, files = rest[0], rest[1:]
    if shutil.which("tshark") is None:
        usage("tshark is not on PATH")
    total = matched = 0
    print("%-58s %6s %6s %6s %6s" % ("file", "tshark", "ours", "w/sni", "same"))
    for path in files:
        hellos = tshark_hellos(path)
        recs = our_records(tv, path, ports)
        same, bad = 0, []
        for ep, want in sorted(hellos.items()):
            if want in recs.get(ep, []):
                same += 1
            else:
                bad.append((ep, want, recs.get(ep, [])))
        n = sum(len(v) for v in recs.values())
        nsni = sum(1 for v in recs.values() for sni, _ in v if sni)
        print("%-58s %6d %6d %6d %6d" % (os.path.basename(path)[:58], len(hellos), n, nsni, same))
        if verbose:
            for ep, want, got in bad:
                print("    %s: tshark sni=%r alpn=%r, ours %r" % (ep, want[0], want[1], got))
        total += len(hellos)
        matched += same
    print("ClientHellos: %d by tshark, %d with the same SNI and ALPN here" % (total, matched))
    return 0 if matched == total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
