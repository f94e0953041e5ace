package main

import (
	"bytes"
	"fmt"
	"html"
)

// chart draws the in-process ns/op medians as horizontal bars, gingov
// above Kratos for each row, one panel per mode. Plain SVG, no fonts or
// scripts beyond the generic sans-serif family.
func chart(s *set) []byte {
	const (
		width    = 860
		labelW   = 190
		barMaxW  = 560
		barH     = 11
		rowGap   = 8
		panelGap = 28
		top      = 46
	)
	ps := s.pairs()
	modes := []string{"serial", "parallel"}
	maxV := 0.0
	rows := 0
	for _, p := range ps {
		for _, b := range []*bench{p.gin, p.kratos} {
			if v, ok := median(b); ok && v > maxV {
				maxV = v
			}
		}
	}
	for _, m := range modes {
		for _, p := range ps {
			if p.mode == m {
				rows++
			}
		}
	}
	height := top + rows*(2*barH+rowGap) + len(modes)*panelGap + 20
	var w bytes.Buffer
	fmt.Fprintf(&w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&w, `<rect width="100%%" height="100%%" fill="#fff"/>`+"\n")
	fmt.Fprintf(&w, `<text x="10" y="18" font-size="14" font-weight="bold">GET /ping in process: ns/op (median, lower is better)</text>`+"\n")
	fmt.Fprintf(&w, `<rect x="%d" y="26" width="10" height="10" fill="#2b6cb0"/><text x="%d" y="35">gingov (Gin)</text>`+"\n", labelW, labelW+14)
	fmt.Fprintf(&w, `<rect x="%d" y="26" width="10" height="10" fill="#dd6b20"/><text x="%d" y="35">Kratos v2.9.2</text>`+"\n", labelW+110, labelW+124)
	y := top
	if maxV == 0 {
		maxV = 1
	}
	for _, m := range modes {
		y += panelGap - 8
		fmt.Fprintf(&w, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y, m)
		y += 8
		for _, p := range ps {
			if p.mode != m {
				continue
			}
			fmt.Fprintf(&w, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-8, y+barH+4, html.EscapeString(p.label()))
			for i, b := range []*bench{p.gin, p.kratos} {
				color := "#2b6cb0"
				if i == 1 {
					color = "#dd6b20"
				}
				by := y + i*barH
				v, ok := median(b)
				if !ok {
					fmt.Fprintf(&w, `<text x="%d" y="%d" fill="#888">n/a</text>`+"\n", labelW+2, by+barH-2)
					continue
				}
				bw := max(1, int(v/maxV*barMaxW))
				fmt.Fprintf(&w, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", labelW, by, bw, barH-1, color)
				fmt.Fprintf(&w, `<text x="%d" y="%d">%s</text>`+"\n", labelW+bw+4, by+barH-2, num(v))
			}
			y += 2*barH + rowGap
		}
	}
	w.WriteString("</svg>\n")
	return w.Bytes()
}

func median(b *bench) (float64, bool) {
	if b == nil {
		return 0, false
	}
	return b.median("ns/op")
}
