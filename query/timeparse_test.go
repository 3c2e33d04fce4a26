package query

import (
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	zone := time.FixedZone("X", 2*3600)
	now := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC).In(zone)
	nowNS := now.UnixNano()
	date := func(y int, mo time.Month, d, h, mi, s, ns int, loc *time.Location) int64 {
		return time.Date(y, mo, d, h, mi, s, ns, loc).UnixNano()
	}
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"now", nowNS},
		{" NOW ", nowNS},
		{"-15m", nowNS - int64(15*time.Minute)},
		{"-2h30m", nowNS - int64(150*time.Minute)},
		{"-1d", nowNS - int64(24*time.Hour)},
		{"-1d12h", nowNS - int64(36*time.Hour)},
		{"-1w", nowNS - int64(7*24*time.Hour)},
		{"+1h", nowNS + int64(time.Hour)},
		{"-1.5h", nowNS - int64(90*time.Minute)},
		{"-250ms", nowNS - int64(250*time.Millisecond)},
		{"-10us", nowNS - 10000},
		{"-10µs", nowNS - 10000},
		{"-7ns", nowNS - 7},
		{"1714979289123456789", 1714979289123456789},
		{"0", 0},
		{"@1714979289", 1714979289000000000},
		{"@1714979289.5", 1714979289500000000},
		{"@1714979289.000000001", 1714979289000000001},
		{"2024-05-06T07:08:09Z", date(2024, 5, 6, 7, 8, 9, 0, time.UTC)},
		{"2024-05-06T07:08:09.25Z", date(2024, 5, 6, 7, 8, 9, 250000000, time.UTC)},
		{"2024-05-06T07:08:09.123456789+01:00", date(2024, 5, 6, 6, 8, 9, 123456789, time.UTC)},
		{"2024-05-06t07:08:09z", date(2024, 5, 6, 7, 8, 9, 0, time.UTC)},
		{"2024-05-06 07:08:09-03:00", date(2024, 5, 6, 10, 8, 9, 0, time.UTC)},
		{"2024-05-06T07:08Z", date(2024, 5, 6, 7, 8, 0, 0, time.UTC)},
		// No zone: now's location.
		{"2024-05-06T07:08:09", date(2024, 5, 6, 7, 8, 9, 0, zone)},
		{"2024-05-06 07:08:09.5", date(2024, 5, 6, 7, 8, 9, 500000000, zone)},
		{"2024-05-06T07:08", date(2024, 5, 6, 7, 8, 0, 0, zone)},
		{"2024-05-06", date(2024, 5, 6, 0, 0, 0, 0, zone)},
	} {
		got, err := ParseTime(tc.in, now)
		if err != nil {
			t.Errorf("ParseTime(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseTime(%q): got %d (%s), want %d (%s)", tc.in, got,
				time.Unix(0, got).UTC().Format(time.RFC3339Nano), tc.want, time.Unix(0, tc.want).UTC().Format(time.RFC3339Nano))
		}
	}
}

func TestParseTimeErrors(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, tc := range []struct{ in, msg string }{
		{"", "empty"},
		{"yesterday", "want RFC 3339"},
		{"15m", "needs a sign (-15m"},
		{"-15", "missing unit"},
		{"-15x", `unknown unit "x"`},
		{"-", "missing duration"},
		{"-h", "expected a number"},
		{"1714979289", "write @1714979289 for unix seconds"},
		{"1714979289123", "unix nanoseconds"},
		{"2024", "unix nanoseconds"},
		{"99999999999999999999", "out of range"},
		{"@17.1234567891", "want @seconds"},
		{"@abc", "want @seconds"},
		{"2024-13-01", "want RFC 3339"},
		{"2024-05-06T25:00:00Z", "want RFC 3339"},
		{"9999-01-01T00:00:00Z", "out of range"},
		{"-999999999w", "out of range"},
		{"-100000d100000d100000d", "out of range"},
	} {
		_, err := ParseTime(tc.in, now)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseTime(%q): got error %v, want one containing %q", tc.in, err, tc.msg)
		}
	}
}

// FuzzParseTime checks that ParseTime never panics and that the forms that
// parse to a time format back to the same time.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"now", "-15m", "-2h30m", "-1d", "@1.5", "1714979289123456789",
		"2024-05-06T07:08:09.5+02:00", "2024-05-06", "2024-05-06 07:08"} {
		f.Add(s)
	}
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseTime(s, now)
		if err != nil {
			return
		}
		round := time.Unix(0, v).UTC().Format(time.RFC3339Nano)
		if w, err := ParseTime(round, now); err != nil || w != v {
			t.Fatalf("ParseTime(%q) = %d; its RFC 3339 form %q gives %d, %v", s, v, round, w, err)
		}
	})
}

func TestIsRelative(t *testing.T) {
	for s, want := range map[string]bool{
		"-15m": true, " +1h": true, "now": true, "NOW": true,
		"2024-05-06T07:08:09Z": false, "1714979289123456789": false, "@1714979289": false, "": false,
	} {
		if got := IsRelative(s); got != want {
			t.Errorf("IsRelative(%q): got %v, want %v", s, got, want)
		}
	}
}
