package bench

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

const cpuinfoX86 = `processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
physical id	: 0
core id		: 0
flags		: fpu vme

processor	: 1
model name	: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
physical id	: 0
core id		: 0

processor	: 2
model name	: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
physical id	: 0
core id		: 1

processor	: 3
model name	: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
physical id	: 1
core id		: 0
`

const cpuinfoARM = `processor	: 0
BogoMIPS	: 50.00
CPU part	: 0xd0c

processor	: 1
BogoMIPS	: 50.00

Hardware	: BCM2835
Model		: Raspberry Pi 4 Model B Rev 1.4
`

func TestParseCPUInfo(t *testing.T) {
	for _, tc := range []struct {
		name, in                   string
		model                      string
		logical, physical, sockets int
	}{
		{"x86", cpuinfoX86, "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", 4, 3, 2},
		{"arm", cpuinfoARM, "BCM2835", 2, 0, 0},
		{"empty", "", "unknown", 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := parseCPUInfo(strings.NewReader(tc.in))
			if c.model != tc.model || c.logical != tc.logical || c.physical != tc.physical || c.sockets != tc.sockets {
				t.Errorf("got %q %d logical %d physical %d sockets, want %q %d %d %d",
					c.model, c.logical, c.physical, c.sockets, tc.model, tc.logical, tc.physical, tc.sockets)
			}
		})
	}
}

const meminfo = `MemTotal:       16318912 kB
MemFree:         1234567 kB
HugePages_Total:    1024
HugePages_Free:      996
HugePages_Rsvd:        0
Hugepagesize:       2048 kB
Bogus line
`

func TestParseMemInfo(t *testing.T) {
	m := parseMemInfo(strings.NewReader(meminfo))
	for k, want := range map[string]int64{
		"MemTotal":        16318912 * 1024,
		"HugePages_Total": 1024,
		"HugePages_Free":  996,
		"Hugepagesize":    2 << 20,
	} {
		if m[k] != want {
			t.Errorf("%s: got %d, want %d", k, m[k], want)
		}
	}
	status := "Name:\tgo\nVmPeak:\t  3060 kB\nVmHWM:\t    1736 kB\nVmRSS:\t 1700 kB\n"
	if got := parseMemInfo(strings.NewReader(status))["VmHWM"]; got != 1736*1024 {
		t.Errorf("VmHWM: got %d, want %d", got, 1736*1024)
	}
}

const mounts = `sysfs /sys sysfs rw,nosuid 0 0
/dev/sda1 / ext4 rw,relatime 0 0
hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0
/dev/nvme0n1p1 /data xfs rw,noatime 0 0
/dev/nvme1n1 /data/my\040store ext4 rw 0 0
/dev/sdb1 /database ext4 rw 0 0
`

func TestParseMounts(t *testing.T) {
	ms := parseMounts(strings.NewReader(mounts))
	if len(ms) != 6 {
		t.Fatalf("got %d mounts, want 6", len(ms))
	}
	for _, tc := range []struct{ path, dir, fs string }{
		{"/data/x/store", "/data", "xfs"},
		{"/data", "/data", "xfs"},
		{"/data/my store/a", "/data/my store", "ext4"},
		{"/database/s", "/database", "ext4"},
		{"/home/u", "/", "ext4"},
		{"/dev/hugepages/rtemap_0", "/dev/hugepages", "hugetlbfs"},
	} {
		m, ok := mountOf(ms, tc.path)
		if !ok || m.dir != tc.dir || m.fsType != tc.fs {
			t.Errorf("%s: got %q %q %v, want %q %q", tc.path, m.dir, m.fsType, ok, tc.dir, tc.fs)
		}
	}
	if _, ok := mountOf(ms[:1], "/data"); ok {
		t.Errorf("/data: got a mount from a table without / or /data")
	}
}

func TestDescribeMachine(t *testing.T) {
	dir := t.TempDir() + "/not/yet/created"
	m := DescribeMachine(dir)
	if m.GoVersion != runtime.Version() {
		t.Errorf("got Go %q, want %q", m.GoVersion, runtime.Version())
	}
	if m.LogicalCPUs <= 0 {
		t.Errorf("got %d logical CPUs", m.LogicalCPUs)
	}
	if m.DPDKVersion == "" || m.Kernel == "" || m.CPUModel == "" {
		t.Errorf("got empty DPDK %q, kernel %q or CPU %q; want a value or unknown", m.DPDKVersion, m.Kernel, m.CPUModel)
	}
	if m.Date.IsZero() {
		t.Errorf("got zero date")
	}
	if m.Store.Dir != dir || m.Store.TotalBytes <= 0 {
		t.Errorf("got store %+v, want dir %s with a size from its existing parent", m.Store, dir)
	}
	if runtime.GOOS == "linux" && m.MemTotal <= 0 {
		t.Errorf("got MemTotal %d on linux", m.MemTotal)
	}
}

func TestPeakRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("VmHWM is Linux-only")
	}
	// Earlier tests in this process leave freed heap pages resident, and a
	// new allocation may reuse them without raising the peak: give them
	// back to the OS and restart the peak from the current RSS first.
	debug.FreeOSMemory()
	if err := ResetPeakRSS(); err != nil {
		t.Skipf("cannot reset the peak: %v", err)
	}
	before := PeakRSS()
	buf := make([]byte, 64<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	after := PeakRSS()
	if before <= 0 || after < before+32<<20 {
		t.Errorf("got peak RSS %d then %d after touching 64 MiB, want at least 32 MiB more", before, after)
	}
	runtime.KeepAlive(buf)
}

func TestResetPeakRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("VmHWM is Linux-only")
	}
	buf := make([]byte, 96<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	peak := PeakRSS()
	runtime.KeepAlive(buf)
	buf = nil
	debug.FreeOSMemory()
	if err := ResetPeakRSS(); err != nil {
		t.Skipf("kernel refused: %v", err)
	}
	if got := PeakRSS(); got > peak-48<<20 {
		t.Errorf("got peak RSS %d after freeing 96 MiB and a reset, want at most %d", got, peak-48<<20)
	}
}
