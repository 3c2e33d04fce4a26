package clocklog

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestAppendReadCompare(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if es, err := Read(a); err != nil || es != nil {
		t.Fatalf("no log: %v %v", es, err)
	}
	e := Entry{TS: 1, Source: "ntp", Synced: true, ErrorNs: 2000, MaxErrorNs: 50000}
	e.Identity()
	for _, d := range []string{a, b} {
		if err := Append(d, e); err != nil {
			t.Fatal(err)
		}
	}
	// A torn line after the readings is skipped.
	f, _ := os.OpenFile(filepath.Join(a, FileName), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"ts_ns":3,"ho`)
	f.Close()
	ea, err := Read(a)
	if err != nil || len(ea) != 1 {
		t.Fatalf("read %v %v", ea, err)
	}
	eb, _ := Read(b)
	if p := Compare(ea, eb); !p.Known || !p.OneClock || p.Uncertainty != 0 {
		t.Errorf("same host and boot: %+v", p)
	}
	other := e
	other.Host, other.BootID, other.ErrorNs = "far", "x", 3000
	if p := Compare(ea, []Entry{other}); !p.Known || p.OneClock || p.Uncertainty != 5*time.Microsecond {
		t.Errorf("two synced clocks: %+v", p)
	}
	other.Synced = false
	if p := Compare(ea, []Entry{other}); p.Uncertainty != 52*time.Microsecond {
		t.Errorf("an unsynchronised clock counts its maximum error: %+v", p)
	}
	if p := Compare(ea, nil); p.Known {
		t.Errorf("no log: %+v", p)
	}
}
