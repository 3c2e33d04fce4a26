package query

import (
	"context"

	"tapvault/analytics"
	"tapvault/msgquery"
)

// Diagnose reads the message records of [from, to], links their tiers
// within window ns (0: the default), and judges them with a
// msgquery.Diagnoser: the verdict of `tapvault diagnose` and
// GET /api/v1/diagnose. Damaged parts of the message store are skipped
// and returned as warnings.
func Diagnose(ctx context.Context, dir string, from, to, window int64, opts msgquery.DiagnoseOptions) (*msgquery.Diagnosis, []error, error) {
	dg := msgquery.NewDiagnoser(opts)
	sel := MessageSel{From: from, To: to, Tiers: true, Window: window, NoDetail: true, Exchanges: true} // a Diagnoser reads no fields, packets or connection records
	ws, err := ScanMessages(ctx, dir, sel, func(r *analytics.Record, t *msgquery.Tier) error {
		dg.Add(r, t)
		return nil
	})
	if err != nil {
		return nil, ws, err
	}
	return dg.Diagnosis(), ws, nil
}
