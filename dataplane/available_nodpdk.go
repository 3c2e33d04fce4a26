//go:build !cgo || nodpdk

package dataplane

// Available reports whether this binary was built with DPDK (live capture).
const Available = false
