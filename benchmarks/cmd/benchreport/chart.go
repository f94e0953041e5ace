package main

import (
	"bytes"
	"fmt"
	"html"
	"slices"
)

// chart draws the in-process ns/op medians as horizontal bars, gingov
// above Kratos v2.9.2 and v3.0.0 for each row (the sides a row has), one
// panel per mode. Plain SVG, no fonts or
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
		for _, b := range []*bench{p.gin, p.kratos, p.kratos3} {
			if v, ok := median(b); ok && v > maxV {
				maxV = v
			}
		}
	}
	for _, m := range modes {
		for _, p := range ps {
			if p.mode == m {
				rows += len(p.sides())
			}
		}
	}
	groups := 0
	for _, p := range ps {
		if slices.Contains(modes, p.mode) {
			groups++
		}
	}
	height := top + rows*barH + groups*rowGap + len(modes)*panelGap + 20
	var w bytes.Buffer
	fmt.Fprintf(&w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&w, `<rect width="100%%" height="100%%" fill="#fff"/>`+"\n")
	fmt.Fprintf(&w, `<text x="10" y="18" font-size="14" font-weight="bold">GET /ping in process: ns/op (median, lower is better)</text>`+"\n")
	fmt.Fprintf(&w, `<rect x="%d" y="26" width="10" height="10" fill="#2b6cb0"/><text x="%d" y="35">gingov (Gin)</text>`+"\n", labelW, labelW+14)
	for i, c := range colors[1:] {
		fmt.Fprintf(&w, `<rect x="%d" y="26" width="10" height="10" fill="%s"/><text x="%d" y="35">%s</text>`+"\n", labelW+110*(i+1), c, labelW+110*(i+1)+14, sideNames[i+1])
	}
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
			sides := p.sides()
			fmt.Fprintf(&w, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-8, y+len(sides)*barH/2+4, html.EscapeString(p.label()))
			for i, side := range sides {
				by := y + i*barH
				v, ok := median(side.b)
				if !ok {
					fmt.Fprintf(&w, `<text x="%d" y="%d" fill="#888">n/a</text>`+"\n", labelW+2, by+barH-2)
					continue
				}
				bw := max(1, int(v/maxV*barMaxW))
				fmt.Fprintf(&w, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", labelW, by, bw, barH-1, colors[side.i])
				fmt.Fprintf(&w, `<text x="%d" y="%d">%s</text>`+"\n", labelW+bw+4, by+barH-2, num(v))
			}
			y += len(sides)*barH + rowGap
		}
	}
	w.WriteString("</svg>\n")
	return w.Bytes()
}

var (
	colors    = []string{"#2b6cb0", "#dd6b20", "#2f855a"}
	sideNames = []string{"gingov (Gin)", "Kratos v2.9.2", "Kratos v3.0.0"}
)

type sideBench struct {
	i int // index in colors and sideNames
	b *bench
}

// sides returns the sides p has results for, gingov always first.
func (p pair) sides() []sideBench {
	out := []sideBench{{0, p.gin}}
	for i, b := range []*bench{p.kratos, p.kratos3} {
		if b != nil {
			out = append(out, sideBench{i + 1, b})
		}
	}
	return out
}

func median(b *bench) (float64, bool) {
	if b == nil {
		return 0, false
	}
	return b.median("ns/op")
}
