package bench

import (
	"fmt"
	"time"
)

// DiskSpeed is the sequential write bandwidth of the store's filesystem,
// measured as dd measures it, in the same run as the captures it is set
// beside: 1 MiB writes of the same buffer to a scratch file in the store's
// directory, removed afterwards.
type DiskSpeed struct {
	Dir   string `json:"dir"`
	Bytes int64  `json:"bytes"` // written by each measurement
	// Direct is `dd bs=1M oflag=direct`: O_DIRECT writes and no sync,
	// so on a disk with a write cache (a VM's virtio disk) it measures
	// that cache. DirectSync adds one fdatasync at the end, as
	// `conv=fdatasync` does: the durable figure. BufferedSync is
	// `dd bs=1M conv=fdatasync` through the page cache. Bytes per second;
	// 0 where it could not be measured (DirectErr says why).
	Direct       float64 `json:"direct_bytes_per_sec"`
	DirectSync   float64 `json:"direct_sync_bytes_per_sec"`
	BufferedSync float64 `json:"buffered_sync_bytes_per_sec"`
	DirectErr    string  `json:"direct_error,omitempty"`
	Err          string  `json:"error,omitempty"`
}

// MeasureDisk measures DiskSpeed in dir, writing n bytes (rounded up to
// whole MiB) for each of its three figures.
func MeasureDisk(dir string, n int64) DiskSpeed {
	const chunk = 1 << 20
	n = (n + chunk - 1) / chunk * chunk
	ds := DiskSpeed{Dir: dir, Bytes: n}
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	if d, err := writeScratch(dir, n, chunk, true, false); err != nil {
		ds.DirectErr = err.Error()
	} else {
		ds.Direct = rate(d)
		if d, err := writeScratch(dir, n, chunk, true, true); err != nil {
			ds.DirectErr = err.Error()
		} else {
			ds.DirectSync = rate(d)
		}
	}
	if d, err := writeScratch(dir, n, chunk, false, true); err != nil {
		ds.Err = err.Error()
	} else {
		ds.BufferedSync = rate(d)
	}
	return ds
}

// Ratio is rate (bytes per second) over the O_DIRECT figure, and over the
// durable one; 0 where that figure is missing.
func (ds *DiskSpeed) Ratio(rate float64) (direct, directSync float64) {
	if ds.Direct > 0 {
		direct = rate / ds.Direct
	}
	if ds.DirectSync > 0 {
		directSync = rate / ds.DirectSync
	}
	return direct, directSync
}

func (ds *DiskSpeed) String() string {
	return fmt.Sprintf("O_DIRECT %.0f MB/s, O_DIRECT+fdatasync %.0f MB/s, buffered+fdatasync %.0f MB/s (%d MiB each)",
		ds.Direct/1e6, ds.DirectSync/1e6, ds.BufferedSync/1e6, ds.Bytes>>20)
}
