// Package api serves a store over HTTP (docs/api.md): packets as pcap or
// pcapng streams, flows and stats as JSON, and the analytics' messages,
// latency groups and a message's packets. It owns the HTTP side: routes,
// parameters, bearer-token authentication, TLS, request logging, bounded
// query concurrency and write deadlines. The web UI and the fleet API
// belong here as they grow.
//
// It must not read the store itself: filters, plans, block reads, message
// scans, the capture-file writers and running a query at low priority are
// package query's, which api calls (msgquery parses message expressions
// and renders records). Nor may it write to the store: it runs beside a
// live capture (tapvault capture --listen) as well as on its own (tapvault
// serve).
package api
