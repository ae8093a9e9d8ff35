package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

var candOrder = []string{"direct", "socket-proxyd", "bro-proxy", "pasta"}

// summary is the median and range of one metric over the repetitions.
type summary struct {
	med, lo, hi float64
	n           int
}

func summarize(v []float64) summary {
	if len(v) == 0 {
		return summary{}
	}
	v = slices.Clone(v)
	slices.Sort(v)
	s := summary{lo: v[0], hi: v[len(v)-1], n: len(v)}
	if len(v)%2 == 1 {
		s.med = v[len(v)/2]
	} else {
		s.med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return s
}

// get summarizes f over the samples of (path, scenario, candidate) that
// have no error.
func (b *bench) get(path, scen, cand string, f func(sample) (float64, bool)) summary {
	var v []float64
	for _, s := range b.samples {
		if s.Path != path || s.Scenario != scen || s.Candidate != cand || s.Err != "" {
			continue
		}
		if x, ok := f(s); ok {
			v = append(v, x)
		}
	}
	return summarize(v)
}

// one is the single sample of (path, scenario, candidate): held runs once.
func (b *bench) one(path, scen, cand string) (sample, bool) {
	for _, s := range b.samples {
		if s.Path == path && s.Scenario == scen && s.Candidate == cand {
			return s, s.Err == ""
		}
	}
	return sample{}, false
}

// The metrics, as functions of a sample. Those of a proxy's process report
// false for direct.
func proxyOnly(f func(sample) float64) func(sample) (float64, bool) {
	return func(s sample) (float64, bool) { return f(s), s.Candidate != "direct" }
}

func every(f func(sample) float64) func(sample) (float64, bool) {
	return func(s sample) (float64, bool) { return f(s), true }
}

var (
	mMBps  = every(func(s sample) float64 { return s.Result.MBps })
	mRate  = every(func(s sample) float64 { return s.Result.Rate })
	mP50   = every(func(s sample) float64 { return s.Result.P50us })
	mP99   = every(func(s sample) float64 { return s.Result.P99us })
	mP999  = every(func(s sample) float64 { return s.Result.P999us })
	mHeld  = every(func(s sample) float64 { return float64(s.Result.Held) })
	mOK    = every(func(s sample) float64 { return float64(s.Result.OK) })
	mLatMS = every(func(s sample) float64 { return s.Result.P50us / 1000 })
	// CPU: utime+stime in ticks of 10 ms
	mCPUperMB = proxyOnly(func(s sample) float64 { return float64(s.CPUTicks) * 1e4 / (float64(s.Result.Bytes) / 1e6) })
	mCPUperOp = proxyOnly(func(s sample) float64 { return float64(s.CPUTicks) * 1e4 / float64(max(s.Result.Ops, 1)) })
	mFDsPer   = proxyOnly(func(s sample) float64 {
		return float64(s.Held.FDs-s.Base.FDs) / float64(max(s.Result.Held, 1))
	})
	mKiBPer = proxyOnly(func(s sample) float64 {
		return float64(s.Held.RSSKiB-s.Base.RSSKiB) / float64(max(s.Result.Held, 1))
	})
	mPeakMB   = proxyOnly(func(s sample) float64 { return float64(s.After.HWMKiB) / 1024 })
	mBaseFDs  = proxyOnly(func(s sample) float64 { return float64(s.Base.FDs) })
	mHeldFDs  = proxyOnly(func(s sample) float64 { return float64(s.Held.FDs) })
	mAfterFDs = proxyOnly(func(s sample) float64 { return float64(s.After.FDs - s.Base.FDs) })
	mBaseMB   = proxyOnly(func(s sample) float64 { return float64(s.Base.RSSKiB) / 1024 })
	mHeldMB   = proxyOnly(func(s sample) float64 { return float64(s.Held.RSSKiB) / 1024 })
	mAfterMB  = proxyOnly(func(s sample) float64 { return float64(s.After.RSSKiB) / 1024 })
	mAfterMS  = proxyOnly(func(s sample) float64 { return float64(s.AfterMS) })
	mProcs    = proxyOnly(func(s sample) float64 { return float64(s.Held.Procs) })
)

// row is one line of the measurements table.
type row struct {
	scen, label string
	f           func(sample) (float64, bool)
	format      string
	ranges      bool   // show min–max
	ratio       bool   // show bro-proxy / socket-proxyd and bro-proxy / pasta
	worst       string // "min" or "max": show the worst run instead of the median
}

func (b *bench) rows() []row {
	n := fmt.Sprintf("%d", b.heldN)
	return []row{
		{scen: "held", label: "connections held of " + n + ", each echoed twice", f: mHeld, format: "%.0f", worst: "min"},
		{scen: "held", label: "descriptors per held connection", f: mFDsPer, format: "%.2f", ratio: true},
		{scen: "held", label: "fds: baseline", f: mBaseFDs, format: "%.0f"},
		{scen: "held", label: "fds: all held", f: mHeldFDs, format: "%.0f"},
		{scen: "held", label: "fds after release − baseline", f: mAfterFDs, format: "%+.0f", worst: "max"},
		{scen: "held", label: "RSS MB: baseline", f: mBaseMB, format: "%.1f"},
		{scen: "held", label: "RSS MB: all held", f: mHeldMB, format: "%.1f"},
		{scen: "held", label: "RSS MB: after release", f: mAfterMB, format: "%.1f"},
		{scen: "held", label: "ms until back (or the 10 s wait ran out)", f: mAfterMS, format: "%.0f"},
		{scen: "idle1000", label: "connections held of 1000 (worst run)", f: mHeld, format: "%.0f", worst: "min"},
		{scen: "idle1000", label: "KiB per idle connection (ΔVmRSS / 1000)", f: mKiBPer, format: "%.2f", ranges: true, ratio: true},
		{scen: "idle1000", label: "peak RSS MB (VmHWM)", f: mPeakMB, format: "%.1f", ranges: true, ratio: true},
		{scen: "idle1000", label: "descriptors per held connection", f: mFDsPer, format: "%.2f"},
		{scen: "idle1000", label: "processes measured (rootless bro-proxy: + its namespace helper)", f: mProcs, format: "%.0f"},
		{scen: "bulk1", label: "MB/s, 1 stream echoed", f: mMBps, format: "%.0f", ranges: true, ratio: true},
		{scen: "bulk1", label: "proxy CPU µs per MB echoed", f: mCPUperMB, format: "%.0f", ratio: true},
		{scen: "bulk8", label: "MB/s, 8 streams echoed", f: mMBps, format: "%.0f", ranges: true, ratio: true},
		{scen: "bulk8", label: "proxy CPU µs per MB echoed", f: mCPUperMB, format: "%.0f", ratio: true},
		{scen: "rr1", label: "round trips/s, 64 B, 1 conn", f: mRate, format: "%.0f", ranges: true, ratio: true},
		{scen: "rr1", label: "p50 µs", f: mP50, format: "%.0f", ratio: true},
		{scen: "rr1", label: "p99 µs", f: mP99, format: "%.0f", ranges: true, ratio: true},
		{scen: "rr1", label: "p99.9 µs", f: mP999, format: "%.0f"},
		{scen: "rr1", label: "proxy CPU µs per round trip", f: mCPUperOp, format: "%.1f", ratio: true},
		{scen: "rr32", label: "round trips/s, 64 B, 32 conns", f: mRate, format: "%.0f", ranges: true, ratio: true},
		{scen: "rr32", label: "p99 µs", f: mP99, format: "%.0f", ratio: true},
		{scen: "rr32", label: "proxy CPU µs per round trip", f: mCPUperOp, format: "%.1f", ratio: true},
		{scen: "conn16", label: "connections/s (connect, 64 B echo, close), 16 workers", f: mRate, format: "%.0f", ranges: true, ratio: true},
		{scen: "conn16", label: "proxy CPU µs per connection", f: mCPUperOp, format: "%.1f", ratio: true},
		{scen: "halfclose", label: "replies after SHUT_WR of 20 (worst run)", f: mOK, format: "%.0f", worst: "min"},
		{scen: "pgbench-S-c8", label: "pgbench -S -c 8: tps", f: mRate, format: "%.0f", ranges: true, ratio: true},
		{scen: "pgbench-S-c8", label: "latency average ms", f: mLatMS, format: "%.3f"},
		{scen: "pgbench-S-c8", label: "proxy CPU µs per transaction", f: mCPUperOp, format: "%.1f", ratio: true},
		{scen: "pgbench-S-C-c4", label: "pgbench -S -C -c 4: tps", f: mRate, format: "%.0f", ranges: true, ratio: true},
		{scen: "pgbench-S-C-c4", label: "latency average ms", f: mLatMS, format: "%.3f"},
		{scen: "pgbench-S-C-c4", label: "proxy CPU µs per transaction", f: mCPUperOp, format: "%.1f", ratio: true},
		{scen: "bulk1-fresh", label: "MB/s, 1 stream, fresh proxy", f: mMBps, format: "%.0f", ranges: true, ratio: true},
		{scen: "bulk1-held1000", label: "MB/s while 1,000 idle connections are held", f: mMBps, format: "%.0f", ranges: true, ratio: true},
		{scen: "bulk1-after1000", label: "MB/s right after 1,000 idle were held", f: mMBps, format: "%.0f", ranges: true, ratio: true},
	}
}

func (b *bench) report(w io.Writer, reps int, took time.Duration) {
	soft, hard := noFile()
	fmt.Fprintf(w, "\n## brobench run, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	if b.note != "" {
		fmt.Fprintf(w, "- %s\n", b.note)
	}
	fmt.Fprintf(w, "- machine: %d CPUs (nproc), kernel %s, %s\n", runtime.NumCPU(), firstLine("uname", "-r"), memTotal())
	fmt.Fprintf(w, "- load average (1, 5, 15 min): %s\n", strings.Join(b.loads, "; "))
	fmt.Fprintf(w, "- versions: bro-proxy %s; %s; %s; pasta %s; %s; brobench built with %s\n",
		strings.TrimPrefix(firstLine(b.proxy, "--version"), "bro-proxy "), firstLine("systemctl", "--version"), firstLine("podman", "--version"),
		pastaVersion(b.pasta), firstLine(b.pgbench, "--version"), runtime.Version())
	fmt.Fprintf(w, "- NOFILE soft %d, hard %d: held = (hard − 100) / 2 rounded down to hundreds = %d; fs.pipe-user-pages-soft %s\n",
		soft, hard, b.heldN, strings.TrimSpace(readFile("/proc/sys/fs/pipe-user-pages-soft")))
	fmt.Fprintf(w, "- %d repetitions (medians, min–max), held once per candidate; %s in all\n\n", reps, took.Round(time.Second))

	fmt.Fprintln(w, "| path | scenario | metric | direct | socket-proxyd | bro-proxy | pasta | bro/proxyd | bro/pasta |")
	fmt.Fprintln(w, "|---|---|---|--:|--:|--:|--:|--:|--:|")
	for _, path := range []string{"netns", "rootless"} {
		for _, r := range b.rows() {
			cells := []string{path, r.scen, r.label}
			any := false
			sums := map[string]summary{}
			for _, c := range candOrder {
				s := b.get(path, r.scen, c, r.f)
				sums[c] = s
				if s.n == 0 {
					cells = append(cells, "–")
					continue
				}
				any = true
				v := s.med
				switch r.worst {
				case "min":
					v = s.lo
				case "max":
					v = s.hi
				}
				cell := fmt.Sprintf(r.format, v)
				if r.ranges && s.n > 1 {
					cell += fmt.Sprintf(" ("+r.format+"–"+r.format+")", s.lo, s.hi)
				}
				cells = append(cells, cell)
			}
			if !any {
				continue
			}
			for _, other := range []string{"socket-proxyd", "pasta"} {
				cell := ""
				if r.ratio && sums[other].n > 0 && sums["bro-proxy"].n > 0 && sums[other].med != 0 {
					cell = fmt.Sprintf("%.2f×", sums["bro-proxy"].med/sums[other].med)
				}
				cells = append(cells, cell)
			}
			fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
		}
	}
	fmt.Fprintln(w)
	b.targets(w)
	var errs []string
	for _, s := range b.samples {
		if s.Err != "" {
			errs = append(errs, fmt.Sprintf("- %s %s %s (rep %d): %s", s.Path, s.Scenario, s.Candidate, s.Rep, s.Err))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nFailed measurements (left out of the medians):\n\n%s\n", strings.Join(errs, "\n"))
	}
}

// target is one line of issue 12's item 3.
type target struct {
	name string
	// eval returns the bro-proxy, socket-proxyd and pasta values as text, the
	// comparison with pasta (if any), and whether bro-proxy meets it; ok is
	// false when there is nothing to judge (not measured).
	eval func(b *bench, path string) (bro, proxyd, pasta, vsPasta string, pass, ok bool)
}

// ratioTarget: bro-proxy's median of f over socket-proxyd's, compared with
// x: at least (higher is better) or at most.
func ratioTarget(name, scen string, f func(sample) (float64, bool), format string, x float64, atLeast bool) target {
	return target{name: name, eval: func(b *bench, path string) (string, string, string, string, bool, bool) {
		br, sp, pa := b.get(path, scen, "bro-proxy", f), b.get(path, scen, "socket-proxyd", f), b.get(path, scen, "pasta", f)
		if br.n == 0 || sp.n == 0 || sp.med == 0 {
			return "", "", "", "", false, false
		}
		r := br.med / sp.med
		pass := r >= x-0.005
		if !atLeast {
			pass = r <= x+0.005
		}
		cell := func(s summary) string {
			if s.n == 0 {
				return "–"
			}
			return fmt.Sprintf(format, s.med)
		}
		vs := ""
		if pa.n > 0 && pa.med != 0 {
			rp := br.med / pa.med
			ahead := rp >= 1
			if !atLeast {
				ahead = rp <= 1
			}
			vs = fmt.Sprintf("%.2f× (%s)", rp, map[bool]string{true: "ahead", false: "behind"}[ahead])
		}
		return fmt.Sprintf("%s (%.2f×)", cell(br), r), cell(sp), cell(pa), vs, pass, true
	}}
}

func (b *bench) targetList() []target {
	n := b.heldN
	heldCell := func(b *bench, path, cand string, f func(s sample) string) string {
		s, ok := b.one(path, "held", cand)
		if !ok {
			if s.Err != "" {
				return "failed"
			}
			return "–"
		}
		return f(s)
	}
	heldTarget := func(name string, f func(s sample) string, pass func(s sample) bool) target {
		return target{name: name, eval: func(b *bench, path string) (string, string, string, string, bool, bool) {
			s, ok := b.one(path, "held", "bro-proxy")
			if !ok && s.Err == "" {
				return "", "", "", "", false, false
			}
			return heldCell(b, path, "bro-proxy", f), heldCell(b, path, "socket-proxyd", f),
				heldCell(b, path, "pasta", f), "", ok && pass(s), true
		}}
	}
	fdsPer := func(s sample) string {
		return fmt.Sprintf("%.2f (%d fds for %d)", float64(s.Held.FDs-s.Base.FDs)/float64(max(s.Result.Held, 1)), s.Held.FDs-s.Base.FDs, s.Result.Held)
	}
	return []target{
		heldTarget("descriptors per held connection: 2 (+ 64 for the process)", fdsPer,
			func(s sample) bool { return s.Held.FDs-s.Base.FDs <= 2*s.Result.Held+64 && s.Result.Held > 0 }),
		heldTarget(fmt.Sprintf("held at once: ≥ %d, each echo-verified", n),
			func(s sample) string { return fmt.Sprintf("%d", s.Result.Held) },
			func(s sample) bool { return s.Result.Held >= n }),
		heldTarget("descriptors back to baseline after",
			func(s sample) string { return fmt.Sprintf("%+d", s.After.FDs-s.Base.FDs) },
			func(s sample) bool { return s.After.FDs <= s.Base.FDs }),
		heldTarget("RSS back to baseline after (≤ 1.25×)",
			func(s sample) string {
				return fmt.Sprintf("%.1f → %.1f → %.1f MB", float64(s.Base.RSSKiB)/1024, float64(s.Held.RSSKiB)/1024, float64(s.After.RSSKiB)/1024)
			},
			func(s sample) bool { return float64(s.After.RSSKiB) <= 1.25*float64(s.Base.RSSKiB) }),
		ratioTarget("memory per idle connection (KiB, at 1,000) ≤ socket-proxyd's", "idle1000", mKiBPer, "%.2f", 1.0, false),
		ratioTarget("peak RSS at 1,000 (MB) ≤ 1.5× socket-proxyd's", "idle1000", mPeakMB, "%.1f", 1.5, false),
		ratioTarget("bulk1 (MB/s) ≥ 1.2×", "bulk1", mMBps, "%.0f", 1.2, true),
		ratioTarget("bulk8 (MB/s) ≥ 1.3×", "bulk8", mMBps, "%.0f", 1.3, true),
		ratioTarget("rr32 (round trips/s) ≥ 1.6×", "rr32", mRate, "%.0f", 1.6, true),
		ratioTarget("conn16 (connections/s) ≥ 1.2×", "conn16", mRate, "%.0f", 1.2, true),
		ratioTarget("rr1 p99 (µs) ≤ 0.9×", "rr1", mP99, "%.0f", 0.9, false),
		ratioTarget("CPU per byte, bulk1 (µs/MB) ≤ socket-proxyd's", "bulk1", mCPUperMB, "%.0f", 1.0, false),
		ratioTarget("CPU per byte, bulk8 (µs/MB) ≤ socket-proxyd's", "bulk8", mCPUperMB, "%.0f", 1.0, false),
		ratioTarget("CPU per operation, rr1 (µs/round trip) ≤ socket-proxyd's", "rr1", mCPUperOp, "%.1f", 1.0, false),
		ratioTarget("CPU per operation, rr32 (µs/round trip) ≤ socket-proxyd's", "rr32", mCPUperOp, "%.1f", 1.0, false),
		ratioTarget("CPU per operation, conn16 (µs/connection) ≤ socket-proxyd's", "conn16", mCPUperOp, "%.1f", 1.0, false),
		ratioTarget("pgbench -S -c 8 (tps) ≥ 1.2×", "pgbench-S-c8", mRate, "%.0f", 1.2, true),
		ratioTarget("pgbench -S -C -c 4 (tps) ≥ 1.1×", "pgbench-S-C-c4", mRate, "%.0f", 1.1, true),
		ratioTarget("CPU per transaction, pgbench -S -c 8 ≤ socket-proxyd's", "pgbench-S-c8", mCPUperOp, "%.1f", 1.0, false),
		ratioTarget("CPU per transaction, pgbench -S -C -c 4 ≤ socket-proxyd's", "pgbench-S-C-c4", mCPUperOp, "%.1f", 1.0, false),
		{name: "bulk1 right after 1,000 idle were held ≥ 0.9× a fresh one (same proxy)", eval: func(b *bench, path string) (string, string, string, string, bool, bool) {
			cell := func(c string) (string, float64, bool) {
				f, a := b.get(path, "bulk1-fresh", c, mMBps), b.get(path, "bulk1-after1000", c, mMBps)
				if f.n == 0 || a.n == 0 || f.med == 0 {
					return "–", 0, false
				}
				return fmt.Sprintf("%.2f× (%.0f → %.0f MB/s)", a.med/f.med, f.med, a.med), a.med / f.med, true
			}
			br, r, ok := cell("bro-proxy")
			if !ok {
				return "", "", "", "", false, false
			}
			sp, _, _ := cell("socket-proxyd")
			pa, _, _ := cell("pasta")
			return br, sp, pa, "", r >= 0.9-0.005, true
		}},
	}
}

func (b *bench) targets(w io.Writer) {
	fmt.Fprintln(w, "### Targets (issue 12, item 3): bro-proxy against systemd-socket-proxyd, same run")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| path | target | bro-proxy | socket-proxyd | pasta | bro vs pasta | result |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|---|")
	pass, miss := 0, 0
	for _, path := range []string{"netns", "rootless"} {
		for _, t := range b.targetList() {
			br, sp, pa, vs, ok, judged := t.eval(b, path)
			if !judged {
				continue
			}
			res := "PASS"
			if ok {
				pass++
			} else {
				res = "**MISS**"
				miss++
			}
			if pa == "" {
				pa = "–"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", path, t.name, br, sp, pa, vs, res)
		}
	}
	fmt.Fprintf(w, "\n%d PASS, %d MISS\n", pass, miss)
}

func firstLine(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "?"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

// pastaVersion: Debian's pasta says "unknown version"; its package knows.
func pastaVersion(p string) string {
	if _, err := os.Stat(p); err != nil {
		return "not installed"
	}
	if v := firstLine("dpkg-query", "-W", "-f", "${Version}", "passt"); v != "?" && v != "" {
		return "(passt " + v + ")"
	}
	return strings.TrimPrefix(firstLine(p, "--version"), "pasta ")
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func memTotal() string {
	for _, l := range strings.Split(readFile("/proc/meminfo"), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			var kib int64
			fmt.Sscan(f[1], &kib)
			return fmt.Sprintf("%.0f GiB RAM", float64(kib)/(1<<20))
		}
	}
	return ""
}
