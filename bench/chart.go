package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The chart is drawn with the standard library alone (image, image/png)
// and a 5x7 bitmap font below. gonum.org/v1/plot was tried: it builds
// without cgo, but brings nine modules (PDF, SVG and LaTeX writers, two
// font sets), and a program drawing one line plot with it was 11 MB, as
// large as all of tapvault without DPDK: too much for two plots.

// Chart size in pixels.
const (
	ChartWidth  = 1000
	ChartHeight = 600
)

var (
	chartBG   = color.RGBA{255, 255, 255, 255}
	chartInk  = color.RGBA{30, 30, 30, 255}
	chartGrid = color.RGBA{225, 225, 225, 255}
	// Series colours (Tableau 10), distinguishable in print and by most
	// colour-blind readers.
	chartPalette = []color.RGBA{
		{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
		{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
	}
)

// WriteChart draws a ChartWidth x ChartHeight PNG: on the left, loss
// against offered rate for every trial of every search, one series per
// kind, with the loss-free rate marked; on the right, the throughput of
// each stage of each run, in Mpps, next to its packets per CPU-second.
func WriteChart(w io.Writer, searches []SearchResult, runs []RunSummary) error {
	c := newCanvas(ChartWidth, ChartHeight)
	c.lossPanel(image.Rect(0, 0, ChartWidth/2, ChartHeight), searches)
	c.stagePanel(image.Rect(ChartWidth/2, 0, ChartWidth, ChartHeight), runs)
	if err := png.Encode(w, c.img); err != nil {
		return fmt.Errorf("chart png: %w", err)
	}
	return nil
}

// WriteChart draws r's searches and runs; see the function WriteChart.
func (r *Report) WriteChart(w io.Writer) error { return WriteChart(w, r.Searches, r.Runs) }

type canvas struct {
	img *image.RGBA
}

func newCanvas(w, h int) *canvas {
	c := &canvas{img: image.NewRGBA(image.Rect(0, 0, w, h))}
	c.fill(c.img.Rect, chartBG)
	return c
}

func (c *canvas) fill(r image.Rectangle, col color.RGBA) {
	r = r.Intersect(c.img.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c.img.SetRGBA(x, y, col)
		}
	}
}

// line draws from (x0, y0) to (x1, y1), width pixels wide; dash > 0 leaves
// gaps of dash pixels every dash pixels.
func (c *canvas) line(x0, y0, x1, y1 float64, width int, col color.RGBA, dash int) {
	n := int(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))) + 1
	for i := 0; i <= n; i++ {
		if dash > 0 && (i/dash)%2 == 1 {
			continue
		}
		t := float64(i) / float64(n)
		x, y := int(math.Round(x0+t*(x1-x0))), int(math.Round(y0+t*(y1-y0)))
		c.fill(image.Rect(x-width/2, y-width/2, x-width/2+width, y-width/2+width), col)
	}
}

const (
	glyphW, glyphH = 5, 7
	textScale      = 2
	charW          = (glyphW + 1) * textScale
	charH          = glyphH * textScale
)

func textWidth(s string) int { return len([]rune(s)) * charW }

// text draws s (upper-cased: the font has no lower case) with its top
// left at (x, y).
func (c *canvas) text(x, y int, s string, col color.RGBA) {
	for _, r := range strings.ToUpper(s) {
		g, ok := font5x7[r]
		if !ok {
			g = font5x7['?']
		}
		for row := 0; row < glyphH; row++ {
			for bit := 0; bit < glyphW; bit++ {
				if g[row]&(1<<(glyphW-1-bit)) != 0 {
					c.fill(image.Rect(x+bit*textScale, y+row*textScale, x+(bit+1)*textScale, y+(row+1)*textScale), col)
				}
			}
		}
		x += charW
	}
}

func (c *canvas) textCentered(cx, y int, s string, col color.RGBA) {
	c.text(cx-textWidth(s)/2, y, s, col)
}

// axes is a plot area with linear scales from 0.
type axes struct {
	area       image.Rectangle
	xMax, yMax float64
}

func (a axes) px(x float64) float64 {
	return float64(a.area.Min.X) + x/a.xMax*float64(a.area.Dx())
}

func (a axes) py(y float64) float64 {
	return float64(a.area.Max.Y) - y/a.yMax*float64(a.area.Dy())
}

// niceStep is a 1, 2 or 5 times a power of ten near span/n.
func niceStep(span float64, n int) float64 {
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// niceMax rounds v up to a whole number of niceStep(v, 5).
func niceMax(v float64) (top, step float64) {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		v = 1
	}
	step = niceStep(v, 5)
	return math.Ceil(v/step-1e-9) * step, step
}

func tickLabel(v, step float64) string {
	d := 0
	if step < 1 {
		d = int(math.Ceil(-math.Log10(step) - 1e-9))
	}
	return strconv.FormatFloat(v, 'f', d, 64)
}

// frame draws grid lines, ticks and labels for a.
func (c *canvas) frame(a axes, xStep, yStep float64, xLabel, yLabel string, xTicks bool) {
	for y := 0.0; y <= a.yMax+yStep/2; y += yStep {
		py := a.py(y)
		c.line(float64(a.area.Min.X), py, float64(a.area.Max.X), py, 1, chartGrid, 0)
		l := tickLabel(y, yStep)
		c.text(a.area.Min.X-8-textWidth(l), int(py)-charH/2, l, chartInk)
	}
	if xTicks {
		for x := 0.0; x <= a.xMax+xStep/2; x += xStep {
			px := a.px(x)
			c.line(px, float64(a.area.Min.Y), px, float64(a.area.Max.Y), 1, chartGrid, 0)
			c.textCentered(int(px), a.area.Max.Y+8, tickLabel(x, xStep), chartInk)
		}
	}
	c.line(float64(a.area.Min.X), float64(a.area.Max.Y), float64(a.area.Max.X), float64(a.area.Max.Y), 2, chartInk, 0)
	c.line(float64(a.area.Min.X), float64(a.area.Min.Y), float64(a.area.Min.X), float64(a.area.Max.Y), 2, chartInk, 0)
	c.textCentered((a.area.Min.X+a.area.Max.X)/2, a.area.Max.Y+8+charH+10, xLabel, chartInk)
	c.text(a.area.Min.X-8-textWidth("00.0"), a.area.Min.Y-charH-12, yLabel, chartInk)
}

// legend draws coloured boxes with names down the top right of area.
func (c *canvas) legend(area image.Rectangle, names []string, cols []color.RGBA) {
	wmax := 0
	for _, n := range names {
		wmax = max(wmax, textWidth(n))
	}
	x := area.Max.X - wmax - 30
	y := area.Min.Y + 8
	if len(names) > 0 {
		c.fill(image.Rect(x-6, y-4, area.Max.X-4, y+len(names)*(charH+6)), chartBG)
	}
	for i, n := range names {
		c.fill(image.Rect(x, y, x+charH, y+charH), cols[i])
		c.text(x+charH+6, y, n, chartInk)
		y += charH + 6
	}
}

func (c *canvas) lossPanel(r image.Rectangle, searches []SearchResult) {
	c.textCentered((r.Min.X+r.Max.X)/2, r.Min.Y+14, "Loss vs offered rate", chartInk)
	area := image.Rect(r.Min.X+80, r.Min.Y+70, r.Max.X-25, r.Max.Y-85)
	var xMax, yMax float64
	for _, s := range searches {
		for _, t := range s.Trials {
			xMax = math.Max(xMax, trialX(&t))
			yMax = math.Max(yMax, 100*t.Loss)
		}
	}
	if xMax == 0 {
		c.textCentered((r.Min.X+r.Max.X)/2, (r.Min.Y+r.Max.Y)/2, "no searches", chartInk)
		return
	}
	xTop, xStep := niceMax(xMax / 1e6)
	yTop, yStep := niceMax(yMax)
	a := axes{area: area, xMax: xTop, yMax: yTop}
	c.frame(a, xStep, yStep, "offered Mpps", "loss %", true)
	var names []string
	var cols []color.RGBA
	for i, s := range searches {
		col := chartPalette[i%len(chartPalette)]
		pts := slices.Clone(s.Trials)
		slices.SortFunc(pts, func(p, q TrialRecord) int { return cmpFloat(trialX(&p), trialX(&q)) })
		for j := 1; j < len(pts); j++ {
			c.line(a.px(trialX(&pts[j-1])/1e6), a.py(100*pts[j-1].Loss), a.px(trialX(&pts[j])/1e6), a.py(100*pts[j].Loss), 2, col, 0)
		}
		for _, p := range pts {
			x, y := int(a.px(trialX(&p)/1e6)), int(a.py(100*p.Loss))
			c.fill(image.Rect(x-5, y-5, x+6, y+6), col)
			if p.Pass {
				c.fill(image.Rect(x-3, y-3, x+4, y+4), chartBG) // hollow: passed
			}
		}
		if s.LossFreePPS > 0 {
			x := a.px(s.LossFreePPS / 1e6)
			c.line(x, float64(area.Min.Y), x, float64(area.Max.Y), 2, col, 6)
		}
		name := s.Kind
		if name == "" {
			name = fmt.Sprintf("search %d", i+1)
		}
		names = append(names, fmt.Sprintf("%s %.3g", name, s.LossFreePPS/1e6))
		cols = append(cols, col)
	}
	c.legend(area, names, cols)
	c.text(area.Min.X, r.Max.Y-22, "hollow: pass. dashed: loss-free Mpps", chartInk)
}

// trialX is the offered rate of a trial: what the generator achieved, or
// what was asked for if it did not say.
func trialX(t *TrialRecord) float64 {
	if t.OfferedPPS > 0 {
		return t.OfferedPPS
	}
	return t.Rate
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (c *canvas) stagePanel(r image.Rectangle, runs []RunSummary) {
	c.textCentered((r.Min.X+r.Max.X)/2, r.Min.Y+14, "Stage throughput", chartInk)
	area := image.Rect(r.Min.X+80, r.Min.Y+70, r.Max.X-25, r.Max.Y-85)
	var stageNames []string
	var yMax float64
	bars := 0
	for i := range runs {
		for _, st := range runs[i].Stages {
			if !slices.Contains(stageNames, st.Name) {
				stageNames = append(stageNames, st.Name)
			}
			yMax = math.Max(yMax, math.Max(rate(float64(st.Packets), runs[i].Elapsed), perCore(st))/1e6)
			bars++
		}
	}
	if bars == 0 {
		c.textCentered((r.Min.X+r.Max.X)/2, (r.Min.Y+r.Max.Y)/2, "no runs", chartInk)
		return
	}
	yTop, yStep := niceMax(yMax * 1.15) // room for the value labels
	a := axes{area: area, xMax: 1, yMax: yTop}
	c.frame(a, 1, yStep, "", "Mpps", false)
	// One slot per stage (its rate, then its rate per CPU-second in a
	// lighter shade), one empty slot between runs.
	slots := bars + len(runs) - 1
	slot := float64(area.Dx()) / float64(slots)
	x := float64(area.Min.X)
	bar := func(x0, x1 int, v float64, col color.RGBA) {
		c.fill(image.Rect(x0, int(a.py(v)), x1, area.Max.Y), col)
		l := strconv.FormatFloat(v, 'f', 2, 64)
		if textWidth(l) <= x1-x0+8 {
			c.textCentered((x0+x1)/2, int(a.py(v))-charH-4, l, chartInk)
		}
	}
	for i := range runs {
		run := &runs[i]
		x0 := x
		for _, st := range run.Stages {
			col := chartPalette[slices.Index(stageNames, st.Name)%len(chartPalette)]
			bx0, mid, bx1 := int(x+slot*0.05), int(x+slot*0.5), int(x+slot*0.95)
			bar(bx0, mid, rate(float64(st.Packets), run.Elapsed)/1e6, col)
			if pc := perCore(st); pc > 0 {
				bar(mid, bx1, pc/1e6, tint(col))
			}
			x += slot
		}
		label := fmt.Sprintf("run %d", i+1)
		if len(runs) == 1 {
			label = run.Name
		}
		for len(label) > 1 && textWidth(label) > int(x-x0) {
			label = label[:len(label)-1]
		}
		c.textCentered(int((x0+x)/2), area.Max.Y+8, label, chartInk)
		x += slot
	}
	cols := make([]color.RGBA, len(stageNames))
	for i := range cols {
		cols[i] = chartPalette[i%len(chartPalette)]
	}
	c.legend(area, stageNames, cols)
	c.text(area.Min.X, r.Max.Y-22, "light: Mpps per CPU-second", chartInk)
}

// perCore is the packets a stage handled per second of its CPU: what one
// core could sustain if the stage were alone on it; 0 without CPU.
func perCore(st Stage) float64 {
	if st.CPU <= 0 {
		return 0
	}
	return float64(st.Packets) / st.CPU
}

// tint is col halfway to white.
func tint(col color.RGBA) color.RGBA {
	return color.RGBA{col.R/2 + 128, col.G/2 + 128, col.B/2 + 128, 255}
}

// font5x7 holds the glyphs the chart needs: rows top to bottom, the high
// bit of the five on the left.
var font5x7 = map[rune][glyphH]uint8{
	' ': {},
	'0': {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E},
	'1': {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
	'2': {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F},
	'3': {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
	'4': {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02},
	'5': {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
	'6': {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E},
	'7': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
	'8': {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E},
	'9': {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
	'A': {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11},
	'B': {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},
	'C': {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E},
	'D': {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C},
	'E': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F},
	'F': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},
	'G': {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F},
	'H': {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	'I': {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E},
	'J': {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},
	'K': {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11},
	'L': {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},
	'M': {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11},
	'N': {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},
	'O': {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},
	'P': {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},
	'Q': {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D},
	'R': {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},
	'S': {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E},
	'T': {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
	'U': {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},
	'V': {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},
	'W': {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A},
	'X': {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},
	'Y': {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04},
	'Z': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},
	'.': {0, 0, 0, 0, 0, 0x0C, 0x0C},
	',': {0, 0, 0, 0, 0x0C, 0x04, 0x08},
	':': {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0},
	'%': {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03},
	'-': {0, 0, 0, 0x1F, 0, 0, 0},
	'+': {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0},
	'=': {0, 0, 0x1F, 0, 0x1F, 0, 0},
	'/': {0, 0x01, 0x02, 0x04, 0x08, 0x10, 0},
	'(': {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02},
	')': {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},
	'_': {0, 0, 0, 0, 0, 0, 0x1F},
	'#': {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A},
	'<': {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02},
	'>': {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08},
	'?': {0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04},
}
