package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strings"
	"time"
)

var (
	scaleMode = flag.Bool("scale", false, "run the scale scenario instead: every variant at -n sessions (5,000) and at -scale-n (19,000), S1, S4, S3 and S5 only, and the table of what grows with sessions")
	scaleN    = flag.Int("scale-n", 19_000, "-scale: the large session count (a process holds at most `ulimit -Hn` files: 20,000 here)")
)

// runScale runs each variant at p.n sessions and at -scale-n, in turn, for -rounds rounds, and
// prints what grows with the sessions: connects/s, memory per session, broadcast deliveries/s
// and p99, and the paced p99 with every other session idle. It reports whether anything broke.
func runScale(p plan, names []string) bool {
	*only = "S3,S5" // S1 and S4 always run; S2, S6, S9 say nothing about size
	small, large := p, p
	large.n = *scaleN
	runs := make([][2][]*result, len(names))
	failed := false
	for round := range max(1, *rounds) {
		for i, v := range names {
			for k, pl := range []plan{small, large} {
				start := time.Now()
				r := runVariant(v, *basePort+i, pl)
				log.Printf("%s at %d sessions: round %d done in %s", v, pl.n, round+1, time.Since(start).Round(time.Millisecond))
				for _, e := range r.errs {
					log.Printf("%s at %d sessions: FAIL: %s", v, pl.n, e)
					failed = true
				}
				runs[i][k] = append(runs[i][k], r)
			}
		}
	}
	res := make([][2]*result, len(names))
	for i := range names {
		res[i] = [2]*result{median(runs[i][0]), median(runs[i][1])}
	}
	printScale(os.Stdout, small, large, names, res)
	return !failed
}

func printScale(w io.Writer, small, large plan, names []string, res [][2]*result) {
	rows := []row{
		{"S1 connections/s", func(r *result) float64 { return r.s1Rate }, count},
		{"S4 RSS/session", func(r *result) float64 { return r.s4PerConn }, kb},
		{"S4 Go heap/session", func(r *result) float64 { return r.s4Heap }, kb},
		{"S3 broadcast deliveries/s", func(r *result) float64 { return r.s3.rate }, count},
		{"S3 broadcast latency p99", func(r *result) float64 { return float64(r.s3.p99) }, ms},
		{"S3 server CPU/delivery", func(r *result) float64 { return r.s3.nodeCPU }, cpuTime},
		{"S5 paced latency p50", func(r *result) float64 { return float64(r.s5.p50) }, ms},
		{"S5 paced latency p99", func(r *result) float64 { return float64(r.s5.p99) }, ms},
		{"S5 paced latency p999", func(r *result) float64 { return float64(r.s5.p999) }, ms},
		{"S5 server CPU in cores", func(r *result) float64 { return r.s5.nodeCores }, cores},
	}
	fmt.Fprintf(w, "\nScale: every variant at %d and at %d sessions (one user each), %d B payloads; S3 %d broadcasts, S5 %d/s for %ds.\n\n",
		small.n, large.n, small.size, small.s3Count, small.s5Rate, small.s5Secs)
	head := []string{"figure"}
	for _, n := range names {
		head = append(head, fmt.Sprintf("%s %d", n, small.n), fmt.Sprintf("%s %d", n, large.n), n+" ÷ itself at "+fmt.Sprint(small.n))
	}
	n, c := slices.Index(names, "notify"), slices.Index(names, "centrifuge")
	if n >= 0 && c >= 0 {
		head = append(head, fmt.Sprintf("notify ÷ centrifuge at %d", large.n))
	}
	fmt.Fprintf(w, "| %s |\n|", strings.Join(head, " | "))
	for range head {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for _, rw := range rows {
		cells := []string{rw.label}
		for i := range names {
			s, l := rw.get(res[i][0]), rw.get(res[i][1])
			cells = append(cells, rw.unit(s), rw.unit(l), ratio(l, s))
		}
		if n >= 0 && c >= 0 {
			cells = append(cells, ratio(rw.get(res[n][1]), rw.get(res[c][1])))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	if n < 0 {
		return
	}
	fmt.Fprintf(w, "\nTargets (notify at %d sessions):\n", large.n)
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	ns, nl := res[n][0], res[n][1]
	if len(nl.errs) > 0 || nl.s4PerConn <= 0 {
		fmt.Fprintf(w, "- memory per session ≤ 16 KB: could not be judged (the run failed)\n")
	} else {
		fmt.Fprintf(w, "- memory per session ≤ 16 KB: %s (%s RSS, %s of it Go heap)\n", mark(nl.s4PerConn <= 16*1024), kb(nl.s4PerConn), kb(nl.s4Heap))
	}
	if !ns.s5.ok || !nl.s5.ok || ns.s5.p99 <= 0 {
		fmt.Fprintf(w, "- paced p99 ≤ 1.5× the %d-session run's: could not be judged (an S5 did not complete)\n", small.n)
	} else {
		fmt.Fprintf(w, "- paced p99 ≤ 1.5× the %d-session run's: %s (%s, %s against %s)\n", small.n,
			mark(float64(nl.s5.p99) <= 1.5*float64(ns.s5.p99)), ratio(float64(nl.s5.p99), float64(ns.s5.p99)), ms(float64(nl.s5.p99)), ms(float64(ns.s5.p99)))
	}
}
