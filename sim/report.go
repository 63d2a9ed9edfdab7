package sim

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"time"
)

// Chart geometry, in SVG user units.
const (
	chartW, chartH                 = 800, 360
	padL, padR, padT, padB         = 60, 270, 20, 45
	barRowH, barLabelW, barValueW  = 26, 170, 90
	barChartW                      = 720
	maxCurvePoints                 = 400
	coverageTitle, overheadCaption = "Coverage over time", "Overhead"
)

// palette colours strategies in order; it repeats past its length.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

// WriteHTML writes a self-contained page for r: coverage-over-time curves
// (network mode), overhead bars and the result table. Everything is inline
// SVG and CSS; the page loads nothing.
func WriteHTML(w io.Writer, r Result) error {
	bw := bufio.NewWriter(w)
	title := fmt.Sprintf("rainp2p sim (%s): %d validators, %d full nodes", r.Mode, r.Validators, r.FullNodes)
	fmt.Fprintf(bw, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%s</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1000px}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3} td:first-child{text-align:left}
svg text{font-size:12px;fill:#222} .axis{stroke:#444} .grid{stroke:#e5e5e5}
</style></head><body>
<h1>%s</h1>
<p>%d broadcasts, %d down and %d silent validators, seed %d.</p>
`, html.EscapeString(title), html.EscapeString(title), r.Broadcasts, r.DownValidators, r.SilentValidators, r.Seed)

	if r.Mode == ModeNetwork {
		fmt.Fprintf(bw, "<h2>%s</h2>\n<p>Fraction of targeted (node, broadcast) pairs delivered, against time since the broadcast was sent.</p>\n", coverageTitle)
		writeCoverageSVG(bw, r)
	}
	fmt.Fprintf(bw, "<h2>%s</h2>\n", overheadCaption)
	if r.Mode == ModeNetwork {
		writeBarsSVG(bw, r, "Payload bytes per broadcast", func(s StrategyResult) (float64, bool) {
			if s.PayloadBytesPerBroadcast == nil {
				return 0, false
			}
			return *s.PayloadBytesPerBroadcast, true
		})
	} else {
		writeBarsSVG(bw, r, "Payload messages per broadcast", func(s StrategyResult) (float64, bool) {
			return s.PayloadMessagesPerBroadcast, true
		})
	}
	writeBarsSVG(bw, r, "Duplicates per node per broadcast", func(s StrategyResult) (float64, bool) {
		return s.DuplicatesPerNode, true
	})

	bw.WriteString("<h2>Results</h2>\n<pre>")
	var table htmlEscaper
	if err := r.WriteTable(&table); err != nil {
		return err
	}
	bw.WriteString(html.EscapeString(table.String()))
	bw.WriteString("</pre>\n</body></html>\n")
	return bw.Flush()
}

type htmlEscaper struct{ b []byte }

func (e *htmlEscaper) Write(p []byte) (int, error) { e.b = append(e.b, p...); return len(p), nil }
func (e *htmlEscaper) String() string              { return string(e.b) }

func writeCoverageSVG(w *bufio.Writer, r Result) {
	var maxT time.Duration
	for _, s := range r.Strategies {
		if n := len(s.Curve); n > 0 {
			maxT = max(maxT, s.Curve[n-1])
		}
	}
	xMax := niceCeil(float64(maxT) / float64(time.Millisecond))
	plotW, plotH := float64(chartW-padL-padR), float64(chartH-padT-padB)
	x := func(msv float64) float64 { return padL + msv/xMax*plotW }
	y := func(frac float64) float64 { return padT + (1-frac)*plotH }

	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`+"\n",
		chartW, chartH, chartW, chartH, coverageTitle)
	for i := 0; i <= 5; i++ {
		frac := float64(i) / 5
		fmt.Fprintf(w, `<line class="grid" x1="%d" x2="%.1f" y1="%.1f" y2="%.1f"/><text x="%d" y="%.1f" text-anchor="end">%.0f%%</text>`+"\n",
			padL, x(xMax), y(frac), y(frac), padL-6, y(frac)+4, frac*100)
		tx := xMax * float64(i) / 5
		fmt.Fprintf(w, `<line class="grid" x1="%.1f" x2="%.1f" y1="%d" y2="%.1f"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n",
			x(tx), x(tx), padT, y(0), x(tx), y(0)+16, trimFloat(tx))
	}
	fmt.Fprintf(w, `<line class="axis" x1="%d" x2="%d" y1="%d" y2="%.1f"/><line class="axis" x1="%d" x2="%.1f" y1="%.1f" y2="%.1f"/>`+"\n",
		padL, padL, padT, y(0), padL, x(xMax), y(0), y(0))
	fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">ms since send</text>`+"\n", padL+plotW/2, chartH-6)

	for i, s := range r.Strategies {
		colour := palette[i%len(palette)]
		if s.Targets > 0 {
			w.WriteString(`<polyline fill="none" stroke-width="2" stroke="` + colour + `" points="`)
			fmt.Fprintf(w, "%.1f,%.1f ", x(0), y(0))
			n := len(s.Curve)
			step := max(1, n/maxCurvePoints)
			for k := 0; k < n; k += step {
				t := float64(s.Curve[k]) / float64(time.Millisecond)
				fmt.Fprintf(w, "%.1f,%.1f %.1f,%.1f ", x(t), y(float64(k)/float64(s.Targets)), x(t), y(float64(k+1)/float64(s.Targets)))
			}
			if n > 0 {
				t := float64(s.Curve[n-1]) / float64(time.Millisecond)
				fmt.Fprintf(w, "%.1f,%.1f %.1f,%.1f", x(t), y(float64(n)/float64(s.Targets)), x(xMax), y(float64(n)/float64(s.Targets)))
			}
			w.WriteString(`"/>` + "\n")
		}
		ly := padT + 10 + i*18
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="14" height="4" fill="%s"/><text x="%d" y="%d">%s (%s)</text>`+"\n",
			chartW-padR+12, ly-4, colour, chartW-padR+32, ly+1, html.EscapeString(s.Name), legendPct(s.DeliveryRatio))
	}
	w.WriteString("</svg>\n")
}

func writeBarsSVG(w *bufio.Writer, r Result, caption string, value func(StrategyResult) (float64, bool)) {
	vMax := 0.0
	for _, s := range r.Strategies {
		if v, ok := value(s); ok {
			vMax = max(vMax, v)
		}
	}
	if vMax == 0 {
		vMax = 1
	}
	h := padT + len(r.Strategies)*barRowH + 10
	fmt.Fprintf(w, "<h3>%s</h3>\n", html.EscapeString(caption))
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`+"\n",
		barChartW, h, barChartW, h, html.EscapeString(caption))
	span := float64(barChartW - barLabelW - barValueW)
	for i, s := range r.Strategies {
		top := padT/2 + i*barRowH
		fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="end">%s</text>`, barLabelW-8, top+16, html.EscapeString(s.Name))
		v, ok := value(s)
		if !ok {
			fmt.Fprintf(w, `<text x="%d" y="%d">n/a</text>`+"\n", barLabelW+4, top+16)
			continue
		}
		bw := v / vMax * span
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/><text x="%.1f" y="%d">%s</text>`+"\n",
			barLabelW, top+4, bw, barRowH-8, palette[i%len(palette)], float64(barLabelW)+bw+6, top+16, trimFloat(v))
	}
	w.WriteString("</svg>\n")
}

// legendPct is a delivery ratio for the chart legend, "n/a" without targets.
func legendPct(r *float64) string {
	if r == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", *r*100)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, so axis ticks at
// fifths are round numbers.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	switch {
	case v >= 100 || v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
