package query

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// timeForms is the help text of every error, so that a user who got one
// form wrong sees the others.
const timeForms = "want RFC 3339 (2024-05-06T07:08:09Z, fraction and zone optional), " +
	"a relative time (-15m, -2h30m, -1d), unix nanoseconds, @unix-seconds, or now"

// zoneless are the layouts tried, in ParseTime's now.Location(), when the
// string carries no zone. Fractional seconds are accepted after any seconds
// field (time.Parse does that without a layout for them).
var zoneless = []string{
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02",
}

// ParseTime parses a --from/--to time into nanoseconds since the Unix epoch.
// now anchors relative times and "now", and its Location is the zone of a
// time written without one. Accepted forms (docs/filters.md):
//
//	2024-05-06T07:08:09Z             RFC 3339, fraction and zone optional;
//	2024-05-06 07:08:09.5+02:00      a space may replace the T;
//	2024-05-06T07:08, 2024-05-06     seconds, or the whole time, omitted
//	-15m, -2h30m, -1d, +1h, -1.5h    relative to now: units ns us ms s m h d w
//	                                 (d = 24h, w = 7d, not calendar days)
//	1714979289123456789              unix nanoseconds
//	@1714979289, @1714979289.5       unix seconds
//	now
func ParseTime(s string, now time.Time) (int64, error) {
	in := s
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return 0, fmt.Errorf("parse time %q: empty; %s", in, timeForms)
	case strings.EqualFold(s, "now"):
		return now.UnixNano(), nil
	case s[0] == '-' || s[0] == '+':
		d, err := parseRelative(s[1:])
		if err != nil {
			return 0, fmt.Errorf("parse time %q: %v; %s", in, err, timeForms)
		}
		if s[0] == '-' {
			d = -d
		}
		t := now.UnixNano()
		if (d > 0 && t > math.MaxInt64-d) || (d < 0 && t < math.MinInt64-d) {
			return 0, fmt.Errorf("parse time %q: out of range", in)
		}
		return t + d, nil
	case s[0] == '@':
		return parseUnixSeconds(in, s[1:])
	case isDigits(s):
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse time %q: out of range for unix nanoseconds", in)
		}
		// A nanosecond count within about 3 years of the epoch (other than
		// 0, "from the start") is implausible for a capture, while a year,
		// or today in seconds, milliseconds or microseconds, lands there.
		if v > 0 && v < 1e17 {
			return 0, fmt.Errorf("parse time %q: a bare integer is unix nanoseconds, "+
				"which puts this one in %d; write @%s for unix seconds", in, time.Unix(0, v).UTC().Year(), s)
		}
		return v, nil
	}
	if isDigits(s[:1]) && !strings.ContainsAny(s, "-:") {
		if _, err := parseRelative(s); err == nil {
			return 0, fmt.Errorf("parse time %q: a relative time needs a sign (-%s for the past)", in, s)
		}
	}
	t, err := parseDate(s, now.Location())
	if err != nil {
		return 0, fmt.Errorf("parse time %q: %s", in, timeForms)
	}
	if y := t.Year(); y < 1678 || y > 2261 {
		return 0, fmt.Errorf("parse time %q: year %d is out of range (1678-2261)", in, y)
	}
	return t.UnixNano(), nil
}

// IsRelative reports whether s is a time ParseTime reads relative to now
// (-15m, +1h, now): one that counts from the wall clock, and so selects
// nothing in a store of an imported, older trace.
func IsRelative(s string) bool {
	s = strings.TrimSpace(s)
	return s != "" && (s[0] == '-' || s[0] == '+' || strings.EqualFold(s, "now"))
}

// parseDate parses the RFC 3339 family; loc is the zone of a time written
// without one.
func parseDate(s string, loc *time.Location) (time.Time, error) {
	s = strings.ToUpper(s) // 2024-05-06t07:08:09z is RFC 3339 too
	if len(s) > 10 && s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02T15:04Z07:00", s); err == nil {
		return t, nil
	}
	var err error
	for _, layout := range zoneless {
		var t time.Time
		if t, err = time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

// parseRelative parses a duration such as 2h30m, 1d or 1.5h (no sign).
func parseRelative(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("missing duration after the sign")
	}
	var total int64
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		j := i
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		num, unit := s[:i], s[i:j]
		if num == "" {
			return 0, fmt.Errorf("expected a number before %q", s)
		}
		if unit == "" {
			return 0, fmt.Errorf("missing unit after %q (ns us ms s m h d w)", num)
		}
		var d time.Duration
		var err error
		switch unit {
		case "d", "w":
			d, err = time.ParseDuration(num + "h")
			mul := time.Duration(24)
			if unit == "w" {
				mul = 24 * 7
			}
			if err == nil && d > math.MaxInt64/mul {
				return 0, fmt.Errorf("duration out of range")
			}
			d *= mul
		case "ns", "us", "µs", "μs", "ms", "s", "m", "h":
			d, err = time.ParseDuration(num + unit)
		default:
			return 0, fmt.Errorf("unknown unit %q (ns us ms s m h d w)", unit)
		}
		if err != nil {
			return 0, fmt.Errorf("invalid or out of range duration %q", num+unit)
		}
		if total > math.MaxInt64-int64(d) {
			return 0, fmt.Errorf("duration out of range")
		}
		total += int64(d)
		s = s[j:]
	}
	return total, nil
}

// parseUnixSeconds parses the digits after '@': seconds with an optional
// fraction of up to 9 digits.
func parseUnixSeconds(in, s string) (int64, error) {
	sec, frac, _ := strings.Cut(s, ".")
	if !isDigits(sec) || (frac != "" && !isDigits(frac)) || len(frac) > 9 {
		return 0, fmt.Errorf("parse time %q: want @seconds[.fraction]; %s", in, timeForms)
	}
	v, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || v > math.MaxInt64/int64(time.Second)-1 {
		return 0, fmt.Errorf("parse time %q: out of range", in)
	}
	ns := int64(0)
	if frac != "" {
		ns, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	return v*1e9 + ns, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
