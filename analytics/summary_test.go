package analytics

import "testing"

func TestAppendDuration(t *testing.T) {
	for _, c := range []struct {
		ns   int64
		want string
	}{
		{-1, "-"}, {0, "0ns"}, {999, "999ns"}, {1000, "1µs"}, {1500, "1.5µs"}, {1_234_567, "1.235ms"},
		{1_234_000, "1.234ms"}, {2_500_000_000, "2.5s"}, {187_200_000_000, "3m7.2s"}, {60_000_000_000, "1m0s"},
	} {
		if got := string(AppendDuration(nil, c.ns)); got != c.want {
			t.Errorf("AppendDuration(%d): got %q, want %q", c.ns, got, c.want)
		}
	}
}
