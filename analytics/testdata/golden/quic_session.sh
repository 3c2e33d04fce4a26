#!/bin/bash
# Makes quic.pcap: ngtcp2 0.12.1's example HTTP/3 client and server
# (Debian's ngtcp2-client and ngtcp2-server, GnuTLS), on loopback in a
# private network namespace, captured with tcpdump. Run as root:
#
#	unshare -m -n bash quic_session.sh OUT.pcap
#
# (a private /etc/hosts is mounted there: the client sends its host name
# as the SNI, and "localhost" for an address).
#
# Connections, in order (all to port 443):
#  1. QUIC v1 over IPv4 to 127.0.0.1, SNI www.example.test, one GET;
#  2. QUIC v1 over IPv6 to ::1, a server that validates addresses first
#     (a Retry), SNI retry.example.test;
#  3. a first Initial of a version the server does not speak (0x1a2a3a4a),
#     answered by a Version Negotiation, then QUIC v1: SNI vn.example.test;
#  4. Initials to 127.0.0.3, where nothing listens: no answer.
set -e
out=${1:?usage: quic_session.sh OUT.pcap}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
ip link set lo up
ip addr add 127.0.0.3/8 dev lo 2>/dev/null || true
printf '127.0.0.1 www.example.test vn.example.test\n::1 retry.example.test\n127.0.0.3 nobody.example.test\n' >"$dir/hosts"
mount --bind "$dir/hosts" /etc/hosts
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=example.test -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
mkdir "$dir/htdocs"
echo 'hello over QUIC' >"$dir/htdocs/index.html"
tcpdump -i lo -s 0 -U -w "$out" udp port 443 2>/dev/null &
sleep 1
gtlsserver -q -d "$dir/htdocs" 127.0.0.1 443 "$dir/key.pem" "$dir/cert.pem" &
gtlsserver -q -V -d "$dir/htdocs" ::1 443 "$dir/key.pem" "$dir/cert.pem" &
sleep 1
c() { timeout 5 gtlsclient -q --exit-on-all-streams-close "$@" >/dev/null 2>&1 || true; sleep 0.3; }
c www.example.test 443 https://www.example.test/index.html
c retry.example.test 443 https://retry.example.test/index.html
c -v 0x1a2a3a4a --preferred-versions=v1 vn.example.test 443 https://vn.example.test/index.html
timeout 1 gtlsclient -q nobody.example.test 443 https://nobody.example.test/ >/dev/null 2>&1 || true
sleep 1
