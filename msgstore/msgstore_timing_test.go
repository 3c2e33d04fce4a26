package msgstore

import (
	"context"
	"testing"

	"tapvault/analytics"
)

func BenchmarkAppendRecord(b *testing.B) {
	r := httpRecord(42, t0)
	buf := AppendRecord(nil, r)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRecord(buf[:0], r)
	}
	b.ReportMetric(float64(len(buf)), "bytes/record")
}

func BenchmarkParseRecord(b *testing.B) {
	buf := AppendRecord(nil, httpRecord(42, t0))
	var r analytics.Record
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRecord(buf, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTerms(b *testing.B) {
	r := httpRecord(42, t0)
	var tb analytics.TermBuf
	b.ReportAllocs()
	for b.Loop() {
		tb.Build(r)
	}
}

// BenchmarkWriterAppend measures Append including frame sealing: term
// hashing, bloom, zstd and the file write (no fsync: SyncEvery is long).
func BenchmarkWriterAppend(b *testing.B) {
	recs := httpRecords(4096)
	w, err := OpenWriter(b.TempDir(), Options{SyncEvery: 1 << 62})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := w.Append(recs[i&4095]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	st := w.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if st.Records > 0 {
		b.ReportMetric(float64(st.Bytes)/float64(st.Records), "disk-bytes/record")
	}
}

func BenchmarkScan(b *testing.B) {
	root := b.TempDir()
	w, err := OpenWriter(root, Options{SyncEvery: 1 << 62})
	if err != nil {
		b.Fatal(err)
	}
	const n = 100_000
	for i, r := range httpRecords(n) {
		r.ID = uint64(i) + 1
		if err := w.Append(r); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	rd, err := OpenReader(root)
	if err != nil {
		b.Fatal(err)
	}
	defer rd.Close()
	for _, bc := range []struct {
		name string
		q    Query
	}{
		{"all", Query{}},
		{"term=absent", Query{Terms: []string{"host=absent.example"}}},
		{"term=id", Query{Terms: []string{"id=000000000000c350"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var got int
			for b.Loop() {
				got = 0
				if err := rd.Scan(context.Background(), bc.q, func(*analytics.Record) error { got++; return nil }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(got), "matched")
		})
	}
}
