#!/bin/bash
# Queries a dnsmasq on 127.0.0.53:53 that answers from its own records only
# (no upstream): A, AAAA, MX, TXT, a name it does not know (NXDOMAIN, as it
# is authoritative for example.test), and a query over TCP.
set -e
dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=127.0.0.53 --bind-interfaces --port=53 \
	--local=/example.test/ --address=/www.example.test/192.0.2.10 --address=/www.example.test/2001:db8::10 \
	--mx-host=example.test,mail.example.test,10 --txt-record=example.test,"v=spf1 -all" \
	--host-record=mail.example.test,192.0.2.25 --log-queries=extra 2>/tmp/dnsg/dnsmasq.log &
pid=$!
sleep 1
q() { dig @127.0.0.53 +tries=1 +time=2 "$@" >/dev/null; sleep 0.05; }
q www.example.test A
q www.example.test AAAA
q example.test MX
q example.test TXT
q nothere.example.test A
q mail.example.test A +tcp
q www.example.test A +tcp
kill $pid
