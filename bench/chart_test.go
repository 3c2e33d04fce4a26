package bench

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"testing"
	"time"
)

func chartSearches(t *testing.T) []SearchResult {
	t.Helper()
	var out []SearchResult
	for _, tc := range []struct {
		kind     string
		capacity float64
	}{{"udp64", 1.2e6}, {"imix", 0.8e6}} {
		dev := &fakeDevice{capacity: tc.capacity}
		s, err := SearchLossFree(context.Background(), SearchOptions{Kind: tc.kind, MaxRate: 2e6, Duration: time.Second}, dev.trial, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func decodeChart(t *testing.T, b []byte) *image.RGBA {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if got := img.Bounds(); got.Dx() != ChartWidth || got.Dy() != ChartHeight {
		t.Fatalf("got %dx%d, want %dx%d", got.Dx(), got.Dy(), ChartWidth, ChartHeight)
	}
	rgba := image.NewRGBA(img.Bounds())
	for y := 0; y < ChartHeight; y++ {
		for x := 0; x < ChartWidth; x++ {
			rgba.Set(x, y, img.At(x, y))
		}
	}
	return rgba
}

// count is how many pixels of r have colour col.
func count(img *image.RGBA, r image.Rectangle, col color.RGBA) int {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if img.RGBAAt(x, y) == col {
				n++
			}
		}
	}
	return n
}

func TestWriteChart(t *testing.T) {
	r := sampleReport()
	r.Searches = chartSearches(t)
	var b bytes.Buffer
	if err := r.WriteChart(&b); err != nil {
		t.Fatal(err)
	}
	img := decodeChart(t, b.Bytes())
	left := image.Rect(0, 0, ChartWidth/2, ChartHeight)
	right := image.Rect(ChartWidth/2, 0, ChartWidth, ChartHeight)
	// Each search is a series in its own colour, in the left panel only.
	for i := range r.Searches {
		col := chartPalette[i]
		if n := count(img, left, col); n < 300 {
			t.Errorf("series %d: got %d pixels of its colour in the left panel, want >= 300", i, n)
		}
	}
	// Both searches' first trial (2 Mpps) lost packets: loss 40% and 60%
	// reach the top half of the plot; passes sit on the x axis.
	top := image.Rect(80, 70, ChartWidth/2-25, ChartHeight/2)
	if n := count(img, top, chartPalette[1]); n < 50 {
		t.Errorf("got %d pixels of the imix series in the top half, want >= 50", n)
	}
	// Each stage of the run is a bar in its own colour on the right. With
	// seven stages a bar is a few pixels wide: 300 pixels is a bar, not a
	// legend swatch (about 100).
	for i, st := range r.Runs[0].Stages {
		if n := count(img, right, chartPalette[i]); n < 300 {
			t.Errorf("stage %s: got %d pixels of its bar colour, want >= 300", st.Name, n)
		}
	}
	// Stages with CPU also show their rate per CPU-second, lighter.
	for i, st := range r.Runs[0].Stages {
		n := count(img, right, tint(chartPalette[i]))
		if st.CPU > 0 && n < 300 || st.CPU == 0 && n != 0 {
			t.Errorf("stage %s (CPU %v s): got %d pixels of its per-core bar", st.Name, st.CPU, n)
		}
	}
	// Text is drawn.
	if n := count(img, img.Rect, chartInk); n < 2000 {
		t.Errorf("got %d ink pixels, want >= 2000", n)
	}
}

func TestWriteChartEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := WriteChart(&b, nil, nil); err != nil {
		t.Fatal(err)
	}
	img := decodeChart(t, b.Bytes())
	ink := count(img, img.Rect, chartInk)
	bg := count(img, img.Rect, chartBG)
	if ink == 0 || bg+ink != ChartWidth*ChartHeight {
		t.Errorf("got %d ink and %d background pixels of %d; want titles and notes only", ink, bg, ChartWidth*ChartHeight)
	}
	for _, col := range chartPalette {
		if n := count(img, img.Rect, col); n != 0 {
			t.Errorf("got %d pixels of series colour %v with no data", n, col)
		}
	}
}

func TestNiceMax(t *testing.T) {
	for _, tc := range []struct{ v, top, step float64 }{
		{0, 1, 0.2}, {1, 1, 0.2}, {3.7, 4, 1}, {38.27, 40, 10}, {0.012, 0.015, 0.005}, {14.88, 15, 5},
	} {
		top, step := niceMax(tc.v)
		if !near(top, tc.top) || !near(step, tc.step) {
			t.Errorf("niceMax(%v): got %v step %v, want %v step %v", tc.v, top, step, tc.top, tc.step)
		}
	}
	if got := tickLabel(0.4, 0.2); got != "0.4" {
		t.Errorf("got %q, want 0.4", got)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestFontGlyphsFit(t *testing.T) {
	for r, g := range font5x7 {
		for row, bits := range g {
			if bits >= 1<<glyphW {
				t.Errorf("glyph %q row %d: got %#x, wider than %d bits", r, row, bits, glyphW)
			}
		}
	}
	for _, s := range []string{"loss vs offered rate", "offered mpps", "stage throughput", "0123456789.%"} {
		for _, r := range s {
			if r >= 'a' && r <= 'z' {
				r -= 'a' - 'A'
			}
			if _, ok := font5x7[r]; !ok {
				t.Errorf("no glyph for %q", r)
			}
		}
	}
}
