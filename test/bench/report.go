package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

var candNames = []string{"direct", "socket-proxyd", "bro --netns", "bro --pid"}

// agg is the medians (and ranges) of one metric per candidate.
type agg struct {
	med, lo, hi map[string]float64
	n           map[string]int
}

func collect(samples []sample, scen string, f func(sample) (float64, bool)) agg {
	a := agg{map[string]float64{}, map[string]float64{}, map[string]float64{}, map[string]int{}}
	vals := map[string][]float64{}
	for _, s := range samples {
		if s.Scenario != scen || s.Err != "" {
			continue
		}
		if v, ok := f(s); ok {
			vals[s.Candidate] = append(vals[s.Candidate], v)
		}
	}
	for c, v := range vals {
		slices.Sort(v)
		a.lo[c], a.hi[c], a.n[c] = v[0], v[len(v)-1], len(v)
		if len(v)%2 == 1 {
			a.med[c] = v[len(v)/2]
		} else {
			a.med[c] = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
	}
	return a
}

// row is one line of the table.
type row struct {
	scen, metric string
	get          func(sample) (float64, bool)
	format       string // for the values
	ranges       bool   // show min-max
	ratio        bool   // show bro / socket-proxyd
	target       string
	// met reports whether one bro candidate meets the target, given the
	// medians of this row (and of the run, for the few targets that need
	// more than one row).
	met func(a agg, cand string) bool
}

func proxyOnly(f func(sample) float64) func(sample) (float64, bool) {
	return func(s sample) (float64, bool) { return f(s), s.Candidate != "direct" }
}

func all(f func(sample) float64) func(sample) (float64, bool) {
	return func(s sample) (float64, bool) { return f(s), true }
}

func ratioAtLeast(x float64) func(agg, string) bool {
	return func(a agg, c string) bool {
		sp := a.med["socket-proxyd"]
		return sp > 0 && a.med[c]/sp >= x-0.005
	}
}

func rows() []row {
	mbps := all(func(s sample) float64 { return s.Result.MBps })
	rate := all(func(s sample) float64 { return s.Result.Rate })
	fails := all(func(s sample) float64 { return float64(s.Result.Failures) })
	lat := func(q string) func(sample) (float64, bool) {
		return all(func(s sample) float64 {
			switch q {
			case "p50":
				return s.Result.P50us
			case "p99":
				return s.Result.P99us
			}
			return s.Result.P999us
		})
	}
	cpu := proxyOnly(func(s sample) float64 { return s.CPUSecs })
	return []row{
		{scen: "bulk1", metric: "MB/s, 1×2 GiB echoed", get: mbps, format: "%.0f", ranges: true, ratio: true, target: "≥ 1.0×", met: ratioAtLeast(1.0)},
		{scen: "bulk1", metric: "proxy CPU s", get: cpu, format: "%.2f"},
		{scen: "bulk8", metric: "MB/s, 8×128 MiB echoed", get: mbps, format: "%.0f", ranges: true, ratio: true, target: "≥ 1.2×", met: ratioAtLeast(1.2)},
		{scen: "bulk8", metric: "proxy CPU s", get: cpu, format: "%.2f"},
		{scen: "rr1", metric: "ops/s, 64 B, 1 conn", get: rate, format: "%.0f", ranges: true, ratio: true},
		{scen: "rr1", metric: "p50 µs", get: lat("p50"), format: "%.0f"},
		{scen: "rr1", metric: "p99 µs", get: lat("p99"), format: "%.0f"},
		{scen: "rr1", metric: "p99.9 µs", get: lat("p999"), format: "%.0f"},
		{scen: "rr32", metric: "ops/s, 64 B, 32 conns", get: rate, format: "%.0f", ranges: true, ratio: true, target: "≥ 1.4×", met: ratioAtLeast(1.4)},
		{scen: "rr32", metric: "p50 µs", get: lat("p50"), format: "%.0f"},
		{scen: "rr32", metric: "p99 µs", get: lat("p99"), format: "%.0f"},
		{scen: "rr32", metric: "p99.9 µs", get: lat("p999"), format: "%.0f"},
		{scen: "rr32", metric: "proxy CPU s", get: cpu, format: "%.2f"},
		{scen: "conn16", metric: "conns/s, 16 workers", get: rate, format: "%.0f", ranges: true, ratio: true, target: "≥ 1.15×", met: ratioAtLeast(1.15)},
		{scen: "conn16", metric: "failures (worst run)", get: fails, format: "%.0f"},
		{scen: "conn1000", metric: "conns/s, 1000 workers", get: rate, format: "%.0f", ranges: true, ratio: true},
		{scen: "conn1000", metric: "failures (worst run)", get: fails, format: "%.0f", target: "0",
			met: func(a agg, c string) bool { return a.n[c] > 0 && a.hi[c] == 0 }},
		{scen: "idle1000", metric: "connections held of 1000 (worst run)", get: all(func(s sample) float64 { return float64(s.Result.Held) }), format: "%.0f", target: "1000",
			met: func(a agg, c string) bool { return a.n[c] > 0 && a.lo[c] == 1000 }},
		{scen: "idle1000", metric: "KiB user space per held conn (ΔVmRSS)", get: proxyOnly(func(s sample) float64 { return s.KiBPer }), format: "%.1f", ranges: true, target: "≤ 4",
			met: func(a agg, c string) bool { return a.n[c] > 0 && a.med[c] <= 4 }},
		{scen: "idle1000", metric: "peak RSS MB (VmHWM)", get: proxyOnly(func(s sample) float64 { return float64(s.PeakRSS) / 1024 }), format: "%.1f", ranges: true, ratio: true, target: "≤ 2×",
			met: func(a agg, c string) bool { sp := a.med["socket-proxyd"]; return sp > 0 && a.med[c] <= 2*sp }},
		{scen: "idle1000", metric: "fds: before load", get: proxyOnly(func(s sample) float64 { return float64(s.BaseFDs) }), format: "%.0f"},
		{scen: "idle1000", metric: "fds: while held", get: proxyOnly(func(s sample) float64 { return float64(s.HeldFDs) }), format: "%.0f"},
		{scen: "idle1000", metric: "fds: after the load (worst run)", get: proxyOnly(func(s sample) float64 { return float64(s.AfterFDs - s.BaseFDs) }), format: "+%.0f", target: "+0",
			met: func(a agg, c string) bool { return a.n[c] > 0 && a.hi[c] <= 0 }},
		{scen: "halfclose", metric: "replies after SHUT_WR of 20 (worst run)", get: all(func(s sample) float64 { return float64(s.Result.OK) }), format: "%.0f", target: "20",
			met: func(a agg, c string) bool { return a.n[c] > 0 && a.lo[c] == 20 }},
	}
}

// printTable writes the markdown table: medians, min–max where it helps,
// the ratio of each bro-proxy to systemd-socket-proxyd from the same run,
// and the target.
func printTable(w io.Writer, samples []sample) {
	fmt.Fprintln(w, "| scenario | metric | direct | socket-proxyd | bro --netns | bro --pid | bro/proxyd (netns, pid) | target | met |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|---|---|")
	for _, r := range rows() {
		a := collect(samples, r.scen, r.get)
		if len(a.n) == 0 {
			continue
		}
		worst := strings.Contains(r.metric, "worst run")
		cells := []string{r.scen, r.metric}
		for _, c := range candNames {
			if a.n[c] == 0 {
				cells = append(cells, "–")
				continue
			}
			v := a.med[c]
			if worst {
				v = a.hi[c]
				if strings.Contains(r.metric, "held") || strings.Contains(r.metric, "replies") {
					v = a.lo[c]
				}
			}
			cell := fmt.Sprintf(r.format, v)
			if r.ranges && a.n[c] > 1 {
				cell += fmt.Sprintf(" ("+r.format+"–"+r.format+")", a.lo[c], a.hi[c])
			}
			cells = append(cells, cell)
		}
		ratio := ""
		if r.ratio && a.med["socket-proxyd"] > 0 {
			ratio = fmt.Sprintf("%.2f×, %.2f×", a.med["bro --netns"]/a.med["socket-proxyd"], a.med["bro --pid"]/a.med["socket-proxyd"])
		}
		met := ""
		if r.met != nil {
			var miss []string
			for _, c := range []string{"bro --netns", "bro --pid"} {
				if !r.met(a, c) {
					miss = append(miss, strings.TrimPrefix(c, "bro "))
				}
			}
			switch {
			case len(miss) == 0:
				met = "yes"
			case len(miss) == 2:
				met = "**no**"
			default:
				met = "**no** (" + miss[0] + ")"
			}
		}
		cells = append(cells, ratio, r.target, met)
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
}
