// Package centre is the fleet's query plane (docs/fleet.md, "The centre"):
// one API and web UI over every sensor. Metadata views (exchanges, latency
// quantiles, cross-sensor transit, sensor health) are answered from
// ClickHouse, where the sensors ship their records; packet views are
// fetched from the sensor that holds the packets, over the fleet's mutual
// TLS, and streamed through: a drill-down unchanged, a flow or filter query
// fanned out to the sensors flow_blocks names and merged in time order into
// pcapng with one interface per sensor; one exchange across sensors
// (across.go) is matched by package hops from the drill-downs of the
// sensors that saw it, with candidates from ClickHouse.
//
// It owns the centre's HTTP side, its sensor health probes and the
// statement of cross-sensor clock uncertainty. It must not read a store
// itself (packets stay on the sensors; a sensor's API reads them), nor
// write to ClickHouse (the sensors' shippers in package fleet do), nor
// let an unreachable sensor fail a query: answers name the sensors that are
// missing instead.
package centre
