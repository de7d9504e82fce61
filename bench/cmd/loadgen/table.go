package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

type row struct {
	label string
	get   func(*result) float64
	unit  func(float64) string
}

func ms(v float64) string {
	d := time.Duration(v)
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", v/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", v/1e6)
	default:
		return fmt.Sprintf("%.0f ms", v/1e6)
	}
}
func count(v float64) string { return fmt.Sprintf("%.0f", v) }

// perSend prints a figure per send, or "-" for one that was not measured (negative).
func perSend(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}

// redisRow reports whether a row is about the Redis variants only: the two-node scenarios and
// the Redis counters. The other variants print "-" there, and the rows are left out when no
// Redis variant ran.
func redisRow(label string) bool {
	return strings.HasPrefix(label, "S7") || strings.HasPrefix(label, "S8") || strings.Contains(label, "Redis")
}

// redisRows are the Redis counters of a scenario, per send.
func redisRows(s string, d func(*result) *delivery) []row {
	or := func(ok bool, v float64) float64 {
		if !ok {
			return -1
		}
		return v
	}
	return []row{
		{s + " Redis round trips/send (sending node's client)", func(r *result) float64 { return or(d(r).tripsOK, d(r).redisTrips) }, perSend},
		{s + " Redis commands/send in them", func(r *result) float64 { return or(d(r).tripsOK, d(r).tripCmds) }, perSend},
		{s + " Redis read events/send (Redis INFO)", func(r *result) float64 { return or(d(r).redisOK, d(r).redisReads) }, perSend},
		{s + " Redis commands processed/send (scripts' calls included)", func(r *result) float64 { return or(d(r).redisOK, d(r).redisCmds) }, perSend},
		{s + " Redis CPU/delivery (redis-server, /proc)", func(r *result) float64 { return d(r).redisCPU }, cpuTime},
	}
}
func frac(v float64) string { return fmt.Sprintf("%.3f", v) }

// cpuTime prints a CPU time in ns as µs, or "-" where it was not measured.
func cpuTime(v float64) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f µs", v/1e3)
}

// nsTime prints a CPU time in ns, or "-" where it was not measured.
func nsTime(v float64) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f ns", v)
}

// cores prints a share of CPU time over wall time in cores ("0.75": three quarters of one).
func cores(v float64) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}
func kb(v float64) string { return fmt.Sprintf("%.1f KB", v/1024) }
func mb(v float64) string { return fmt.Sprintf("%.1f MB", v/(1<<20)) }

// gcCount prints a number of collections, which may be zero (where other figures print "-"),
// and a median of two rounds, which may be a half.
func gcCount(v float64) string { return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0") }

func deliveryRows(s string, d func(*result) *delivery, p999, gcs bool) []row {
	rows := []row{
		{s + " deliveries/s", func(r *result) float64 { return d(r).rate }, count},
		{s + " latency p50", func(r *result) float64 { return float64(d(r).p50) }, ms},
		{s + " latency p99", func(r *result) float64 { return float64(d(r).p99) }, ms},
	}
	if p999 {
		rows = append(rows, row{s + " latency p999", func(r *result) float64 { return float64(d(r).p999) }, ms})
	}
	rows = append(rows,
		row{s + " frames/event", func(r *result) float64 { return d(r).framesPerEvent }, frac},
		row{s + " write syscalls/event", func(r *result) float64 { return d(r).writesPerEvent }, frac},
		row{s + " server CPU/delivery", func(r *result) float64 { return d(r).nodeCPU }, cpuTime},
		row{s + " server CPU in cores", func(r *result) float64 { return d(r).nodeCores }, cores})
	if gcs {
		rows = append(rows, row{s + " garbage collections", func(r *result) float64 { return d(r).gcs }, gcCount})
	}
	return rows
}

// find returns the named variant's result, or nil when it did not run.
func find(results []*result, name string) *result {
	if i := slices.IndexFunc(results, func(r *result) bool { return r.name == name }); i >= 0 {
		return results[i]
	}
	return nil
}

func printTable(w io.Writer, p plan, results []*result) {
	raw, n, base := find(results, "raw"), find(results, "notify"), find(results, baseName)
	if n == nil {
		base = nil // no notify ÷ notify-base column
	}
	nr, cr := find(results, "notify-redis"), find(results, "centrifuge-redis")
	if nr == nil {
		cr = nil // no notify-redis ÷ centrifuge-redis column
	}
	sse := find(results, sseName)
	if n == nil {
		sse = nil // no notify-sse ÷ notify column
	}
	anyRedis := slices.ContainsFunc(results, func(r *result) bool { return onRedis(r.name) })
	rows := []row{
		{"S1 connections/s", func(r *result) float64 { return r.s1Rate }, count},
		{"S1 garbage collections", func(r *result) float64 { return r.s1GCs }, gcCount},
		{"S1 server CPU/connection", func(r *result) float64 { return r.s1NodeCPU }, cpuTime},
		{"S1 Redis CPU/connection (redis-server, /proc)", func(r *result) float64 { return r.s1RedisCPU }, cpuTime},
	}
	rows = append(rows, deliveryRows("S2", func(r *result) *delivery { return &r.s2 }, false, false)...)
	rows = append(rows, redisRows("S2", func(r *result) *delivery { return &r.s2 })...)
	rows = append(rows, deliveryRows("S3", func(r *result) *delivery { return &r.s3 }, false, false)...)
	rows = append(rows,
		row{"S4 RSS/connection", func(r *result) float64 { return r.s4PerConn }, kb},
		row{"S4 Go heap/connection", func(r *result) float64 { return r.s4Heap }, kb},
		row{"S4 goroutine stacks/connection", func(r *result) float64 { return r.s4Stack }, kb},
		row{"S4 goroutines/connection", func(r *result) float64 { return r.s4Goroutines }, frac},
		row{"S4 idle upkeep: Redis CPU per session per second", func(r *result) float64 { return r.idleRedisCPU }, nsTime},
		row{"S4 idle upkeep: server CPU per session per second (Redis variants)", func(r *result) float64 { return r.idleNodeCPU }, nsTime})
	rows = append(rows, row{"S5 sends/s generated", func(r *result) float64 { return r.s5.sendRate }, count})
	rows = append(rows, deliveryRows("S5", func(r *result) *delivery { return &r.s5 }, true, true)...)
	rows = append(rows, redisRows("S5", func(r *result) *delivery { return &r.s5 })...)
	rows = append(rows,
		row{"S6 readers' latency p99", func(r *result) float64 { return float64(r.s6.p99) }, ms},
		row{"S6 readers' deliveries/s", func(r *result) float64 { return r.s6.rate }, count},
		row{"S6 server RSS peak growth", func(r *result) float64 { return float64(r.s6RSSPeak) - float64(r.s6RSSBefore) }, mb},
		row{"S6 server RSS growth after S6 (GC'd)", func(r *result) float64 { return float64(r.s6RSSAfter) - float64(r.s6RSSBefore) }, mb},
		row{"S6 events dropped by server", func(r *result) float64 { return float64(r.s6Dropped) }, count})
	rows = append(rows,
		row{"S9 readers' latency p50", func(r *result) float64 { return float64(r.s9.d.p50) }, ms},
		row{"S9 readers' latency p99", func(r *result) float64 { return float64(r.s9.d.p99) }, ms},
		row{"S9 readers' p99 until every non-reader was closed", func(r *result) float64 { return float64(r.s9.p99Before) }, ms},
		row{"S9 readers' p99 after", func(r *result) float64 { return float64(r.s9.p99After) }, ms},
		row{"S9 first non-reader closed after", func(r *result) float64 { return float64(r.s9.firstClose) }, ms},
		row{"S9 every non-reader closed after", func(r *result) float64 { return float64(r.s9.allClosed) }, ms},
		row{"S9 non-readers closed as slow consumers", func(r *result) float64 { return float64(r.s9.closed) }, count},
		row{"S9 server RSS peak growth", func(r *result) float64 { return float64(r.s9.rssPeak) }, mb})
	rows = append(rows, deliveryRows("S7", func(r *result) *delivery { return &r.s7 }, false, false)...)
	rows = append(rows, redisRows("S7", func(r *result) *delivery { return &r.s7 })...)
	rows = append(rows, row{"S8 sends/s generated", func(r *result) float64 { return r.s8.sendRate }, count})
	rows = append(rows, deliveryRows("S8", func(r *result) *delivery { return &r.s8 }, true, false)...)
	rows = append(rows, redisRows("S8", func(r *result) *delivery { return &r.s8 })...)
	if !anyRedis {
		rows = slices.DeleteFunc(rows, func(rw row) bool { return redisRow(rw.label) })
	}

	fmt.Fprintf(w, "\n%d connections (one user each), %d B payloads; S2 %d sends, S3 %d broadcasts, S5 %d/s for %ds",
		p.n, p.size, p.s2Count, p.s3Count, p.s5Rate, p.s5Secs)
	if anyRedis {
		fmt.Fprintf(w, "; S7 and S8 (Redis variants): S2 and S5 sent on node A, read on node B")
	}
	if *senders > 1 {
		fmt.Fprintf(w, "; per-user sends from %d goroutines of the server (-senders %d)", *senders, *senders)
	} else {
		fmt.Fprintf(w, "; per-user sends from one goroutine of the server")
	}
	fmt.Fprintf(w, ".\n\n")
	if anyRedis {
		fmt.Fprintf(w, "The Redis variants share one Redis (%s), pinned to the load generator's CPU and flushed before each; in S7 and S8 both nodes are pinned to the server CPU.\n\n", *redisURL)
	}
	if base != nil {
		fmt.Fprintf(w, "%s is notify at %s: its bench/cmd/server built there, started exactly like notify's and run right after it in every round; notify is the working tree.\n\n",
			baseName, *baseRef)
	}
	gogcNote(w, results)
	head := []string{"figure"}
	for _, r := range results {
		head = append(head, r.name)
	}
	if base != nil {
		head = append(head, "notify ÷ "+baseName)
	}
	if cr != nil {
		head = append(head, "notify-redis ÷ centrifuge-redis")
	}
	if sse != nil {
		head = append(head, sseName+" ÷ notify")
	}
	for _, r := range results {
		if raw != nil && r != raw {
			head = append(head, r.name+" ÷ raw")
		}
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, rw := range rows {
		cells := []string{rw.label}
		for _, r := range results {
			if redisRow(rw.label) && !onRedis(r.name) {
				cells = append(cells, "-")
				continue
			}
			cells = append(cells, rw.unit(rw.get(r)))
		}
		if base != nil {
			cells = append(cells, ratio(rw.get(n), rw.get(base)))
		}
		if cr != nil {
			cells = append(cells, ratio(rw.get(nr), rw.get(cr)))
		}
		if sse != nil {
			if redisRow(rw.label) {
				cells = append(cells, "-")
			} else {
				cells = append(cells, ratio(rw.get(sse), rw.get(n)))
			}
		}
		for _, r := range results {
			if raw != nil && r != raw {
				if redisRow(rw.label) {
					cells = append(cells, "-")
					continue
				}
				cells = append(cells, ratio(rw.get(r), rw.get(raw)))
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintln(w)
	for _, r := range results {
		fmt.Fprintf(w, "- S6 %s: %s; %d closed as slow consumers by the server.\n", r.name, r.s6Fate, r.s6Slow)
		if want("S2") && r.s2Sent < p.s2Count && len(r.errs) == 0 {
			fmt.Fprintf(w, "- S2 %s: the server generated %d of the %d sends within its %ds limit; the rate is over those.\n",
				r.name, r.s2Sent, p.s2Count, p.s2Limit)
		}
		if onRedis(r.name) && want("S7") && r.s7Sent < p.s2Count && len(r.errs) == 0 {
			fmt.Fprintf(w, "- S7 %s: node A generated %d of the %d sends within its %ds limit; the rate is over those.\n",
				r.name, r.s7Sent, p.s2Count, p.s2Limit)
		}
	}
	if anyRedis {
		fmt.Fprintln(w, "- Redis round trips/send: counted by a go-redis hook on the sending node's client (a pipeline is one round trip), notify-redis only; "+
			"Redis read events/send: Redis's total_reads_processed over every client (one per round trip, more for a request longer than one read), the best outside measure of round trips for both; "+
			"commands processed: Redis's total_commands_processed, which counts the commands a script calls too.")
	}
	targets(w, results, raw)
	sseTargets(w, n, sse)
	redisTargets(w, p, n, nr, cr, find(results, "centrifuge-redis-full"))
}

// sseTargets checks notify's event stream (notify-sse) against its WebSocket path (notify) in
// the same run: per-user deliveries/s (S2) ≥ 0.5×, memory per idle session (S4 RSS) ≤ 1.5×,
// paced p99 (S5) ≤ 2×.
func sseTargets(w io.Writer, n, sse *result) {
	if n == nil || sse == nil {
		return
	}
	if *gogc != "" {
		fmt.Fprintf(w, "\nTargets (notify-sse against notify's WebSocket path in the same run; every server ran with GOGC=%s, not as the targets are measured):\n", *gogc)
	} else {
		fmt.Fprintln(w, "\nTargets (notify-sse against notify's WebSocket path in the same run):")
	}
	const s2, s4, s5 = "S2 per-user deliveries/s ≥ 0.5× notify's", "S4 memory per idle session ≤ 1.5× notify's",
		"S5 paced p99 ≤ 2× notify's"
	switch {
	case !want("S2"):
		unjudged(w, s2, "S2 did not run: -only")
	case !n.s2.ok || !sse.s2.ok:
		unjudged(w, s2, "an S2 did not complete")
	default:
		check(w, s2, sse.s2.rate >= 0.5*n.s2.rate, against(sse.s2.rate, n.s2.rate, count))
	}
	switch {
	case len(n.errs) > 0 || len(sse.errs) > 0 || n.s4PerConn <= 0:
		unjudged(w, s4, "a variant failed")
	default:
		check(w, s4, sse.s4PerConn <= 1.5*n.s4PerConn, against(sse.s4PerConn, n.s4PerConn, kb))
	}
	switch {
	case !want("S5"):
		unjudged(w, s5, "S5 did not run: -only")
	case !n.s5.ok || n.s5.p99 == 0:
		unjudged(w, s5, "notify's S5 did not complete")
	case !sse.s5.ok || sse.s5.p99 == 0:
		check(w, s5, false, "notify-sse's S5 did not complete")
	default:
		check(w, s5, sse.s5.p99 <= 2*n.s5.p99, against(float64(sse.s5.p99), float64(n.s5.p99), ms))
	}
}

// gogcNote says when the servers did not run with Go's default GOGC: with -gogc, or because a
// server reported another (something in it set GOGC), or could not tell.
func gogcNote(w io.Writer, results []*result) {
	want, started := int64(100), "no GOGC in its environment (Go's default, 100)"
	if *gogc != "" {
		started = "GOGC=" + *gogc
		fmt.Fprintf(w, "Every server ran with GOGC=%s (-gogc): a diagnostic; the targets are about Go's default (100).\n\n", *gogc)
		v, err := strconv.ParseInt(*gogc, 10, 64)
		switch {
		case *gogc == "off":
			want = -1
		case err == nil:
			want = v
		default:
			return
		}
	}
	for _, r := range results {
		var other []string
		for _, g := range r.gogc {
			if s := strconv.FormatInt(g, 10); g != want && !slices.Contains(other, s) {
				other = append(other, s)
			}
		}
		if len(other) > 0 {
			fmt.Fprintf(w, "%s's server reported GOGC=%s, started with %s: something in it sets GOGC, and its figures are not measured as the targets are.\n\n",
				r.name, strings.Join(other, ", "), started)
		} else if len(r.gogc) == 0 && len(r.errs) == 0 {
			fmt.Fprintf(w, "%s's server does not report its GOGC (its /bench/stats predates that); it was started with %s.\n\n", r.name, started)
		}
	}
}

func ratio(a, b float64) string {
	if b <= 0 || a <= 0 { // no ratio of figures that are missing, or of growths that are not
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// targets checks notify's figures against the goals of the benchmark. The S1 target against raw
// (0.9×) is retired: its price was half the memory per connection, so S1's ratio to raw is
// printed as a figure. The paced tail (S5 p99) is judged against centrifuge's in the same run.
func targets(w io.Writer, results []*result, raw *result) {
	var n, m, cf *result
	for _, r := range results {
		switch r.name {
		case "notify":
			n = r
		case "melody":
			m = r
		case "centrifuge":
			cf = r
		}
	}
	if n == nil {
		return
	}
	if *gogc != "" {
		fmt.Fprintf(w, "\nTargets (notify; every server ran with GOGC=%s, not as the targets are measured):\n", *gogc)
	} else {
		fmt.Fprintln(w, "\nTargets (notify):")
	}
	if m != nil && m.s2.rate > 0 {
		check(w, "S2 ≥ 20× melody bare", n.s2.rate >= 20*m.s2.rate, fmt.Sprintf("%.1f×", n.s2.rate/m.s2.rate))
	}
	if cf != nil && len(cf.errs) == 0 {
		var lost []string
		for _, f := range []struct {
			name          string
			n, c          float64
			lowerIsBetter bool
		}{
			{"S1 rate", n.s1Rate, cf.s1Rate, false},
			{"S2 rate", n.s2.rate, cf.s2.rate, false},
			{"S2 p99", float64(n.s2.p99), float64(cf.s2.p99), true},
			{"S3 rate", n.s3.rate, cf.s3.rate, false},
			{"S3 p99", float64(n.s3.p99), float64(cf.s3.p99), true},
			{"S4 RSS", n.s4PerConn, cf.s4PerConn, true},
			{"S5 p99", float64(n.s5.p99), float64(cf.s5.p99), true},
			{"S6 readers' p99", float64(n.s6.p99), float64(cf.s6.p99), true},
		} {
			if f.lowerIsBetter && f.n > f.c || !f.lowerIsBetter && f.n < f.c {
				lost = append(lost, f.name)
			}
		}
		detail := "all of S1, S2, S3 rates and p99s, S4, S5 p99, S6 p99"
		if len(lost) > 0 {
			detail = "behind on " + strings.Join(lost, ", ")
		}
		check(w, "ahead of centrifuge on every figure", len(lost) == 0, detail)
	}
	if raw != nil {
		check(w, "S2 ≥ 0.8× raw", n.s2.rate >= 0.8*raw.s2.rate, ratio(n.s2.rate, raw.s2.rate))
		check(w, "S3 ≥ 0.8× raw", n.s3.rate >= 0.8*raw.s3.rate, ratio(n.s3.rate, raw.s3.rate))
		check(w, "S3 p99 ≤ 1.25× raw's", n.s3.p99 <= raw.s3.p99*5/4, ratio(float64(n.s3.p99), float64(raw.s3.p99)))
	}
	const s5 = "S5 p99 ≤ centrifuge's"
	switch {
	case !want("S5"):
		unjudged(w, s5, "S5 did not run: -only")
	case cf == nil:
		unjudged(w, s5, "centrifuge did not run: -variants")
	case !cf.s5.ok || cf.s5.p99 == 0:
		unjudged(w, s5, "centrifuge's S5 did not complete")
	case !n.s5.ok || n.s5.p99 == 0:
		check(w, s5, false, "notify's S5 did not complete")
	default:
		check(w, s5, n.s5.p99 <= cf.s5.p99, fmt.Sprintf("%s against %s, %s",
			ms(float64(n.s5.p99)), ms(float64(cf.s5.p99)), ratio(float64(n.s5.p99), float64(cf.s5.p99))))
	}
	check(w, "S4 ≤ 16 KB per idle connection", n.s4PerConn <= 16*1024, kb(n.s4PerConn))
	check(w, "S6 readers' p99 ≤ 1.1× S3's", n.s6.p99 <= n.s3.p99*11/10, ratio(float64(n.s6.p99), float64(n.s3.p99)))
	check(w, "S6 every non-reading client closed with 4002", strings.Contains(n.s6Fate, "closed 4002") &&
		!strings.Contains(n.s6Fate, ", ") && !strings.Contains(n.s6Fate, "open"), n.s6Fate)
	if want("S9") {
		check(w, "S9 readers' p99 ≤ 50 ms beside clients that stop reading", n.s9.d.ok && n.s9.d.p99 <= 50*time.Millisecond,
			ms(float64(n.s9.d.p99)))
	}
	check(w, "S5 one frame per event when idle", n.s5.framesPerEvent > 0 && n.s5.framesPerEvent <= 1.001,
		frac(n.s5.framesPerEvent))
	check(w, "S2, S3 write syscalls per event well below one", n.s2.writesPerEvent < 0.5 && n.s3.writesPerEvent < 0.5,
		frac(n.s2.writesPerEvent)+", "+frac(n.s3.writesPerEvent))
	if raw != nil {
		fmt.Fprintf(w, "- S1 ÷ raw: %s, no target (the 0.9× target is retired: its price was half the memory per connection)\n",
			ratio(n.s1Rate, raw.s1Rate))
	}
}

// redisTargets checks notify-redis against centrifuge-redis per resource, in the same run: the
// CPU time each process spends per unit of work, the redis-server's read from /proc (it shares
// the load generator's core, so throughput ratios measure that core: they are printed, not
// targeted). And notify-redis's server CPU at the paced rate against notify's in memory.
// The targets are judged against centrifuge-redis; when centrifuge-redis-full (crf) ran, each
// target against centrifuge-redis is followed by an unjudged line with the ratio to it, which
// does at connect the work notify-redis does (presence, position).
func redisTargets(w io.Writer, p plan, n, nr, cr, crf *result) {
	if nr == nil || cr == nil && crf == nil {
		return
	}
	note := ""
	if *senders != 32 {
		note = fmt.Sprintf("; the targets are stated for -senders 32, this run used -senders %d", *senders)
	}
	fmt.Fprintf(w, "\nTargets (notify-redis against centrifuge-redis on the same Redis, per resource%s):\n", note)
	failed := func(r *result) bool { return len(r.errs) > 0 }
	const noCR = "centrifuge-redis did not run: -variants"
	// like prints the like-for-like line under a target: notify-redis's figure against
	// centrifuge-redis-full's, when both have it.
	like := func(get func(*result) float64, unit func(float64) string) {
		if crf != nil && !failed(nr) && !failed(crf) && get(nr) > 0 && get(crf) > 0 {
			fmt.Fprintf(w, "  - like for like, against centrifuge-redis-full: %s, no target\n", against(get(nr), get(crf), unit))
		}
	}
	// S2's CPU figures, zero where S2 did not complete (no like-for-like line then)
	ifOK := func(ok bool, v float64) float64 {
		if !ok {
			return 0
		}
		return v
	}
	s2Redis := func(r *result) float64 { return ifOK(r.s2.ok, r.s2.redisCPU) }
	s2Node := func(r *result) float64 { return ifOK(r.s2.ok, r.s2.nodeCPU) }
	const (
		s2r = "S2 Redis CPU per per-user delivery ≤ 0.5× centrifuge-redis's"
		s1r = "S1 Redis CPU per connection ≤ 1× centrifuge-redis's"
		s2n = "S2 server CPU per per-user delivery ≤ 0.7× centrifuge-redis's"
		s5n = "S5 server CPU at the paced rate ≤ 1.5× notify's in memory"
	)
	switch {
	case cr == nil:
		unjudged(w, s1r, noCR)
	case failed(nr) || failed(cr):
		unjudged(w, s1r, "a variant failed")
	case nr.s1RedisCPU <= 0 || cr.s1RedisCPU <= 0:
		unjudged(w, s1r, "the redis-server's CPU time could not be read from /proc")
	default:
		check(w, s1r, nr.s1RedisCPU <= cr.s1RedisCPU, against(nr.s1RedisCPU, cr.s1RedisCPU, cpuTime))
	}
	like(func(r *result) float64 { return r.s1RedisCPU }, cpuTime)
	switch {
	case !want("S2"):
		unjudged(w, s2r, "S2 did not run: -only")
		unjudged(w, s2n, "S2 did not run: -only")
	case cr == nil:
		unjudged(w, s2r, noCR)
		like(s2Redis, cpuTime)
		unjudged(w, s2n, noCR)
		like(s2Node, cpuTime)
	case !nr.s2.ok || !cr.s2.ok:
		unjudged(w, s2r, "an S2 did not complete")
		unjudged(w, s2n, "an S2 did not complete")
	default:
		if nr.s2.redisCPU <= 0 || cr.s2.redisCPU <= 0 {
			unjudged(w, s2r, "the redis-server's CPU time could not be read from /proc")
		} else {
			check(w, s2r, nr.s2.redisCPU <= 0.5*cr.s2.redisCPU, against(nr.s2.redisCPU, cr.s2.redisCPU, cpuTime))
		}
		like(s2Redis, cpuTime)
		if nr.s2.nodeCPU <= 0 || cr.s2.nodeCPU <= 0 {
			unjudged(w, s2n, "a server did not report its CPU time")
		} else {
			check(w, s2n, nr.s2.nodeCPU <= 0.7*cr.s2.nodeCPU, against(nr.s2.nodeCPU, cr.s2.nodeCPU, cpuTime))
		}
		like(s2Node, cpuTime)
	}
	// By default the server's paced sender spins between sends (runtime.Gosched, no timer: see
	// bench/cmd/server), so its process spends about one core in S5 whatever the hub costs;
	// with -pace sleep its CPU time is the sends'.
	kept := func(d delivery) bool { return d.ok && d.sendRate >= 0.98*float64(p.s5Rate) }
	switch {
	case *pace != "sleep":
		unjudged(w, s5n, "the paced sender spins between sends (-pace spin): about one core by construction; -pace sleep measures it")
	case !want("S5"):
		unjudged(w, s5n, "S5 did not run: -only")
	case n == nil:
		unjudged(w, s5n, "notify (in memory) did not run")
	case !kept(nr.s5) || !kept(n.s5):
		unjudged(w, s5n, fmt.Sprintf("the pace was not kept: notify-redis %.0f sends/s, notify %.0f", nr.s5.sendRate, n.s5.sendRate))
	case nr.s5.nodeCores <= 0 || n.s5.nodeCores <= 0:
		unjudged(w, s5n, "a server did not report its CPU time")
	default:
		check(w, s5n, nr.s5.nodeCores <= 1.5*n.s5.nodeCores, fmt.Sprintf("%d sends/s: %s cores", p.s5Rate, against(nr.s5.nodeCores, n.s5.nodeCores, cores)))
	}
	// Throughput and latency: printed beside the targets, for the record.
	if cr == nil {
		return
	}
	if !failed(nr) && !failed(cr) {
		fmt.Fprintf(w, "- S1 connections/s: %s, no target\n", against(nr.s1Rate, cr.s1Rate, count))
	}
	if want("S2") && nr.s2.ok && cr.s2.ok {
		fmt.Fprintf(w, "- S2 per-user deliveries/s: %s, no target\n", against(nr.s2.rate, cr.s2.rate, count))
	}
	if want("S5") && nr.s5.ok && cr.s5.ok {
		fmt.Fprintf(w, "- S5 paced p99: %s, no target\n", against(float64(nr.s5.p99), float64(cr.s5.p99), ms))
	}
	if want("S7") && nr.s7.ok && cr.s7.ok {
		fmt.Fprintf(w, "- S7 two-node per-user deliveries/s: %s, no target\n", against(nr.s7.rate, cr.s7.rate, count))
	}
	if want("S8") && nr.s8.ok && cr.s8.ok {
		fmt.Fprintf(w, "- S8 two-node paced p99: %s, no target\n", against(float64(nr.s8.p99), float64(cr.s8.p99), ms))
	}
}

// check prints a target's line: met or NOT met, and the figures behind it.
func check(w io.Writer, name string, ok bool, detail string) {
	mark := "met"
	if !ok {
		mark = "NOT met"
	}
	fmt.Fprintf(w, "- %s: %s (%s)\n", name, mark, detail)
}

// unjudged prints the line of a target that could not be judged, and why.
func unjudged(w io.Writer, name, why string) {
	fmt.Fprintf(w, "- %s: could not be judged (%s)\n", name, why)
}

// against prints a ratio and the two figures it is of.
func against(a, b float64, unit func(float64) string) string {
	return fmt.Sprintf("%s, %s against %s", ratio(a, b), unit(a), unit(b))
}
