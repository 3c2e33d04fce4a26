#!/bin/sh
# Makes dns_frag.pcap: DNS responses fragmented by the kernel over IPv4 and
# IPv6. A private network namespace's loopback gets a 1280-byte MTU; a
# Python UDP server on 127.0.0.1:53 and [::1]:53 answers every query with
# one 2816-byte TXT record; dig asks three times (IPv4, IPv6, IPv4), so
# each answer leaves as three fragments. Run as root; needs unshare, ip,
# tcpdump, dig and python3. Packet times vary from run to run: check the
# test's want times against tshark's dns.time after regenerating
# (tshark -r dns_frag.pcap -Y dns.flags.response==1 -T fields -e frame.number -e dns.time).
set -e
out=$(pwd)/dns_frag.pcap
dir=$(mktemp -d)
cat >"$dir/srv.py" <<'PY'
import socket, struct, sys, threading, time
def answer(q):
    tid = struct.unpack('!H', q[:2])[0]
    i = 12
    while q[i] != 0:
        i += 1 + q[i]
    question = q[12:i + 5]
    txt = b''.join(bytes([255]) + bytes([65 + k]) * 255 for k in range(11))
    rr = b'\xc0\x0c' + struct.pack('!HHIH', 16, 1, 300, len(txt)) + txt
    return struct.pack('!HHHHHH', tid, 0x8180, 1, 1, 0, 0) + question + rr
def serve(s):
    while True:
        q, a = s.recvfrom(4096)
        s.sendto(answer(q), a)
socks = []
for fam, addr in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    threading.Thread(target=serve, args=(s,), daemon=True).start()
open(sys.argv[2], 'w').close()  # ready
time.sleep(float(sys.argv[1]))
PY
unshare -n sh -c "
ip link set lo up
ip link set lo mtu 1280
tcpdump -i lo -w '$out' 'udp or ip6 or ip[6:2] & 0x3fff != 0' >/dev/null 2>&1 &
td=\$!
python3 '$dir/srv.py' 30 '$dir/ready' &
while [ ! -e '$dir/ready' ]; do sleep 0.2; done
sleep 1
dig @127.0.0.1 +bufsize=4096 +ignore +tries=1 big.example TXT >/dev/null
dig @::1 +bufsize=4096 +ignore +tries=1 big6.example TXT >/dev/null
sleep 0.5
dig @127.0.0.1 +bufsize=4096 +ignore +tries=1 again.example TXT >/dev/null
sleep 1
kill \$td
wait \$td || true
"
rm -r "$dir"
