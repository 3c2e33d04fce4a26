package hops

import (
	"context"
	"log/slog"
	"strings"

	"tapvault/analytics"
	"tapvault/msgstore"
	"tapvault/packet"
	"tapvault/query"
)

// AddStore adds every packet of the store in dir at point p that the
// request selects.
func (m *Matcher) AddStore(ctx context.Context, p Point, dir string, req query.Request, log *slog.Logger) (query.Result, error) {
	st, err := query.OpenStore(dir, log)
	if err != nil {
		return query.Result{}, err
	}
	defer st.Close()
	var dec packet.Decoder
	var d packet.Decoded
	return st.Run(ctx, req, func(pk *query.Packet) error {
		dec.Decode(pk.Data, pk.LinkType, &d)
		return m.Add(p, pk.TS, &d, pk.Data)
	})
}

// Records reads the exchange records of the store in dir over [from, to]
// (ns; 0 leaves an end open), without their fields and packet refs. A
// store without messages has none.
func Records(ctx context.Context, dir string, from, to int64) ([]*analytics.Record, error) {
	rd, err := msgstore.OpenReader(dir)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var out []*analytics.Record
	err = rd.Scan(ctx, msgstore.Query{From: from, To: to}, func(r *analytics.Record) error {
		if r.Class == analytics.ClassFlow {
			return nil
		}
		c := *r // the scan reuses r
		c.Fields, c.Packets = nil, nil
		c.Proto, c.Class = strings.Clone(r.Proto), strings.Clone(r.Class)
		out = append(out, &c)
		return nil
	})
	return out, err
}
