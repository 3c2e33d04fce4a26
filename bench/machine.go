package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Machine describes the host a report was measured on. Fields that could
// not be read are zero, or "unknown" for strings.
type Machine struct {
	CPUModel      string    `json:"cpu_model"`
	LogicalCPUs   int       `json:"logical_cpus"`
	PhysicalCores int       `json:"physical_cores"` // 0 if /proc/cpuinfo does not say
	Sockets       int       `json:"sockets"`        // 0 if /proc/cpuinfo does not say
	MemTotal      int64     `json:"mem_total_bytes"`
	HugePages     HugePages `json:"hugepages"`
	DPDKVersion   string    `json:"dpdk_version"`
	Kernel        string    `json:"kernel"`
	GoVersion     string    `json:"go_version"`
	Store         Disk      `json:"store"`
	Date          time.Time `json:"date"`
}

// HugePages is the default-size hugepage pool.
type HugePages struct {
	Total     int64    `json:"total"`
	Free      int64    `json:"free"`
	PageSize  int64    `json:"page_size_bytes"`
	Hugetlbfs []string `json:"hugetlbfs_mounts"` // mount points; none means DPDK cannot map hugepages
}

// Disk is the filesystem a store directory lives on.
type Disk struct {
	Dir        string `json:"dir"`
	MountPoint string `json:"mount_point"`
	Device     string `json:"device"`
	FSType     string `json:"fs_type"`
	FreeBytes  int64  `json:"free_bytes"` // available to an unprivileged user
	TotalBytes int64  `json:"total_bytes"`
}

// DescribeMachine reads the host's description from /proc, statfs and
// pkg-config. storeDir need not exist yet: its nearest existing parent is
// measured.
func DescribeMachine(storeDir string) Machine {
	m := Machine{
		CPUModel:    "unknown",
		DPDKVersion: dpdkVersion(),
		Kernel:      "unknown",
		GoVersion:   runtime.Version(),
		Date:        time.Now().UTC().Truncate(time.Second),
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		c := parseCPUInfo(f)
		f.Close()
		m.CPUModel, m.LogicalCPUs, m.PhysicalCores, m.Sockets = c.model, c.logical, c.physical, c.sockets
	}
	if m.LogicalCPUs == 0 {
		m.LogicalCPUs = runtime.NumCPU()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		mi := parseMemInfo(f)
		f.Close()
		m.MemTotal = mi["MemTotal"]
		m.HugePages.Total = mi["HugePages_Total"]
		m.HugePages.Free = mi["HugePages_Free"]
		m.HugePages.PageSize = mi["Hugepagesize"]
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	var mounts []mount
	if f, err := os.Open("/proc/mounts"); err == nil {
		mounts = parseMounts(f)
		f.Close()
	}
	for _, mt := range mounts {
		if mt.fsType == "hugetlbfs" {
			m.HugePages.Hugetlbfs = append(m.HugePages.Hugetlbfs, mt.dir)
		}
	}
	m.Store = describeDisk(storeDir, mounts)
	return m
}

func dpdkVersion() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "pkg-config", "--modversion", "libdpdk").Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		return v
	}
	return "unknown"
}

type cpuInfo struct {
	model                      string
	logical, physical, sockets int
}

// parseCPUInfo reads /proc/cpuinfo: the model of the first processor
// ("model name" on x86, "Model", "Hardware" or "cpu model" elsewhere), the
// number of processors, and distinct (physical id, core id) pairs.
func parseCPUInfo(r io.Reader) cpuInfo {
	c := cpuInfo{model: "unknown"}
	var alt string
	cores := map[[2]string]bool{}
	sockets := map[string]bool{}
	var phys, core string
	flush := func() {
		if phys != "" && core != "" {
			cores[[2]string{phys, core}] = true
		}
		if phys != "" {
			sockets[phys] = true
		}
		phys, core = "", ""
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			flush()
			c.logical++
		case "model name":
			if c.model == "unknown" && v != "" {
				c.model = v
			}
		case "Model", "Hardware", "cpu model", "uarch":
			if alt == "" {
				alt = v
			}
		case "physical id":
			phys = v
		case "core id":
			core = v
		}
	}
	flush()
	if c.model == "unknown" && alt != "" {
		c.model = alt
	}
	c.physical, c.sockets = len(cores), len(sockets)
	return c
}

// parseMemInfo reads /proc/meminfo into bytes for "kB" values and plain
// counts for the rest (HugePages_Total and the like).
func parseMemInfo(r io.Reader) map[string]int64 {
	m := map[string]int64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		m[strings.TrimSpace(k)] = n
	}
	return m
}

type mount struct {
	device, dir, fsType string
}

// parseMounts reads /proc/mounts, undoing its octal escapes (\040 for a
// space).
func parseMounts(r io.Reader) []mount {
	var out []mount
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		out = append(out, mount{device: unescapeMount(f[0]), dir: unescapeMount(f[1]), fsType: f[2]})
	}
	return out
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountOf is the mount holding path (absolute, symlinks resolved): the
// longest mount point that is path or a parent of it; the last such
// mount wins, as later mounts hide earlier ones.
func mountOf(mounts []mount, path string) (mount, bool) {
	var best mount
	found := false
	for _, m := range mounts {
		if !under(path, m.dir) {
			continue
		}
		if !found || len(m.dir) >= len(best.dir) {
			best, found = m, true
		}
	}
	return best, found
}

func under(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

func describeDisk(dir string, mounts []mount) Disk {
	d := Disk{Dir: dir, FSType: "unknown"}
	p, err := filepath.Abs(dir)
	if err != nil {
		return d
	}
	// The store may not exist yet: measure its nearest existing parent.
	for {
		if _, err := os.Stat(p); err == nil {
			break
		}
		parent := filepath.Dir(p)
		if parent == p {
			return d
		}
		p = parent
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	if m, ok := mountOf(mounts, p); ok {
		d.MountPoint, d.Device, d.FSType = m.dir, m.device, m.fsType
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(p, &st); err == nil {
		d.FreeBytes = int64(st.Bavail) * int64(st.Bsize)
		d.TotalBytes = int64(st.Blocks) * int64(st.Bsize)
	}
	return d
}

// PeakRSS is the process's peak resident set size in bytes (VmHWM in
// /proc/self/status), or 0 if it cannot be read. It is a high-water mark
// since the process started or since ResetPeakRSS.
func PeakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	return parseMemInfo(f)["VmHWM"]
}

// ResetPeakRSS resets the peak RSS to the current RSS (Linux 4.0 and
// later), so that PeakRSS measures from now on, e.g. one run.
func ResetPeakRSS() error {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS: %w", err)
	}
	return nil
}
