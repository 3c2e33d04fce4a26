package msgquery

import (
	"testing"
)

func BenchmarkMatch(b *testing.B) {
	r := httpRec()
	for _, c := range []struct{ name, expr string }{
		{"proto_status", "proto http and status >= 500"},
		{"regex", `method = POST and path ~ "^/api/"`},
		{"latency_class", "latency > 50ms and (class slow_app or class slow_net)"},
		{"cidr_miss", "client 192.168.0.0/16 or server 10.0.0.9:5432"},
	} {
		e, err := Parse(c.expr)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e.Match(r)
			}
		})
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	r := httpRec()
	t := &Tier{IsFront: true, Backends: []uint64{1, 2}, Before: 1, Backend: 2, After: 3, Self: 4}
	buf := AppendJSON(nil, r, t)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSON(buf[:0], r, t)
	}
}

func BenchmarkAppendText(b *testing.B) {
	r := httpRec()
	buf := AppendText(nil, r)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendText(buf[:0], r)
	}
}

func BenchmarkTierLinker(b *testing.B) {
	l, err := NewTierLinker(0, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		base := t0 + i*ms
		i++
		l.Push(ex(uint64(2*i), "pgsql", "10.0.0.5:50000", "10.0.0.9:5432", base+2*ms, base+2*ms, base+4*ms, base+4*ms))
		l.Push(ex(uint64(2*i+1), "http", "10.1.2.3:40000", "10.0.0.5:80", base, base+1*ms, base+5*ms, base+6*ms))
	}
}
