package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// median merges the results of several rounds of one variant: every figure is the median of
// its rounds' (the mean of the middle two for an even count), the errors are all rounds' errors, and
// S6's fate is each distinct one with the rounds that had it.
func median(rs []*result) *result {
	if len(rs) == 1 {
		return rs[0]
	}
	m := &result{name: rs[0].name}
	f := func(get func(*result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		slices.Sort(v)
		return (v[(len(v)-1)/2] + v[len(v)/2]) / 2
	}
	dur := func(get func(*result) time.Duration) time.Duration {
		return time.Duration(f(func(r *result) float64 { return float64(get(r)) }))
	}
	u := func(get func(*result) uint64) uint64 {
		return uint64(f(func(r *result) float64 { return float64(get(r)) }))
	}
	d := func(get func(*result) *delivery) delivery {
		out := delivery{ok: true, redisOK: true, tripsOK: true}
		for _, r := range rs {
			out.ok = out.ok && get(r).ok
			out.redisOK = out.redisOK && get(r).redisOK
			out.tripsOK = out.tripsOK && get(r).tripsOK
		}
		out.rate = f(func(r *result) float64 { return get(r).rate })
		out.p50 = dur(func(r *result) time.Duration { return get(r).p50 })
		out.p99 = dur(func(r *result) time.Duration { return get(r).p99 })
		out.p999 = dur(func(r *result) time.Duration { return get(r).p999 })
		out.framesPerEvent = f(func(r *result) float64 { return get(r).framesPerEvent })
		out.writesPerEvent = f(func(r *result) float64 { return get(r).writesPerEvent })
		out.delivered = int64(f(func(r *result) float64 { return float64(get(r).delivered) }))
		out.frames = int64(f(func(r *result) float64 { return float64(get(r).frames) }))
		out.gcs = f(func(r *result) float64 { return get(r).gcs })
		out.sendRate = f(func(r *result) float64 { return get(r).sendRate })
		out.redisCmds = f(func(r *result) float64 { return get(r).redisCmds })
		out.redisReads = f(func(r *result) float64 { return get(r).redisReads })
		out.redisTrips = f(func(r *result) float64 { return get(r).redisTrips })
		out.tripCmds = f(func(r *result) float64 { return get(r).tripCmds })
		out.nodeCPU = f(func(r *result) float64 { return get(r).nodeCPU })
		out.redisCPU = f(func(r *result) float64 { return get(r).redisCPU })
		out.nodeCores = f(func(r *result) float64 { return get(r).nodeCores })
		return out
	}
	m.s1Rate = f(func(r *result) float64 { return r.s1Rate })
	m.s1GCs = f(func(r *result) float64 { return r.s1GCs })
	m.s1NodeCPU = f(func(r *result) float64 { return r.s1NodeCPU })
	m.s1RedisCPU = f(func(r *result) float64 { return r.s1RedisCPU })
	m.idleRedisCPU = f(func(r *result) float64 { return r.idleRedisCPU })
	m.idleNodeCPU = f(func(r *result) float64 { return r.idleNodeCPU })
	m.s4PerConn = f(func(r *result) float64 { return r.s4PerConn })
	m.s4Heap = f(func(r *result) float64 { return r.s4Heap })
	m.s4Stack = f(func(r *result) float64 { return r.s4Stack })
	m.s4Goroutines = f(func(r *result) float64 { return r.s4Goroutines })
	m.s2 = d(func(r *result) *delivery { return &r.s2 })
	m.s3 = d(func(r *result) *delivery { return &r.s3 })
	m.s5 = d(func(r *result) *delivery { return &r.s5 })
	m.s6 = d(func(r *result) *delivery { return &r.s6 })
	m.s7 = d(func(r *result) *delivery { return &r.s7 })
	m.s8 = d(func(r *result) *delivery { return &r.s8 })
	// S6 memory: the round with the median peak growth, so that its three figures belong together.
	byPeak := slices.Clone(rs)
	slices.SortFunc(byPeak, func(a, b *result) int {
		return int(int64(a.s6RSSPeak-a.s6RSSBefore) - int64(b.s6RSSPeak-b.s6RSSBefore))
	})
	mid := byPeak[(len(byPeak)-1)/2]
	m.s6RSSBefore, m.s6RSSPeak, m.s6RSSAfter = mid.s6RSSBefore, mid.s6RSSPeak, mid.s6RSSAfter
	m.s6Slow = u(func(r *result) uint64 { return r.s6Slow })
	m.s6Dropped = u(func(r *result) uint64 { return r.s6Dropped })
	m.s9.d = d(func(r *result) *delivery { return &r.s9.d })
	m.s9.p99Before = dur(func(r *result) time.Duration { return r.s9.p99Before })
	m.s9.p99After = dur(func(r *result) time.Duration { return r.s9.p99After })
	m.s9.firstClose = dur(func(r *result) time.Duration { return r.s9.firstClose })
	m.s9.allClosed = dur(func(r *result) time.Duration { return r.s9.allClosed })
	m.s9.closed = u(func(r *result) uint64 { return r.s9.closed })
	m.s9.rssPeak = u(func(r *result) uint64 { return r.s9.rssPeak })
	m.s2Sent = int(f(func(r *result) float64 { return float64(r.s2Sent) }))
	m.s7Sent = int(f(func(r *result) float64 { return float64(r.s7Sent) }))
	var fates []string
	for i, r := range rs {
		m.errs = append(m.errs, r.errs...)
		m.gogc = append(m.gogc, r.gogc...)
		fates = append(fates, fmt.Sprintf("round %d: %s", i+1, r.s6Fate))
	}
	if same := slices.IndexFunc(rs, func(r *result) bool { return r.s6Fate != rs[0].s6Fate }) < 0; same {
		m.s6Fate = rs[0].s6Fate
	} else {
		m.s6Fate = strings.Join(fates, "; ")
	}
	return m
}

// printSpread prints, for the figures the targets are about, every round's value, and notify's
// ratio per round to raw, to notify-base (-base) and, for S5's p99 and p999, to centrifuge and
// centrifuge-history; and notify-redis's to centrifuge-redis and centrifuge-redis-full for the
// figures of the Redis targets.
func printSpread(w io.Writer, names []string, runs [][]*result) {
	fmt.Fprintf(w, "\nEvery round (the table shows the medians):\n")
	for _, rw := range []struct {
		row
		against []string // the variants notify's ratio is given to, when they ran
	}{
		{row{"S1 connections/s", func(r *result) float64 { return r.s1Rate }, count}, nil},
		{row{"S2 deliveries/s", func(r *result) float64 { return r.s2.rate }, count}, nil},
		{row{"S3 deliveries/s", func(r *result) float64 { return r.s3.rate }, count}, nil},
		{row{"S3 latency p99", func(r *result) float64 { return float64(r.s3.p99) }, ms}, nil},
		{row{"S5 latency p99", func(r *result) float64 { return float64(r.s5.p99) }, ms}, []string{"centrifuge", "centrifuge-history"}},
		{row{"S5 latency p999", func(r *result) float64 { return float64(r.s5.p999) }, ms}, []string{"centrifuge", "centrifuge-history"}},
		{row{"S4 RSS/connection", func(r *result) float64 { return r.s4PerConn }, kb}, nil},
		{row{"S9 readers' latency p99", func(r *result) float64 { return float64(r.s9.d.p99) }, ms}, nil},
		{row{"S9 every non-reader closed after", func(r *result) float64 { return float64(r.s9.allClosed) }, ms}, nil},
		{row{"S1 Redis CPU/connection", func(r *result) float64 { return r.s1RedisCPU }, cpuTime}, nil},
		{row{"S2 Redis CPU/delivery", func(r *result) float64 { return r.s2.redisCPU }, cpuTime}, nil},
		{row{"S2 server CPU/delivery (Redis variants)", func(r *result) float64 { return r.s2.nodeCPU }, cpuTime}, nil},
		{row{"S5 server CPU in cores (Redis variants)", func(r *result) float64 { return r.s5.nodeCores }, cores}, nil},
		{row{"S7 deliveries/s (two nodes)", func(r *result) float64 { return r.s7.rate }, count}, nil},
		{row{"S8 latency p99 (two nodes)", func(r *result) float64 { return float64(r.s8.p99) }, ms}, nil},
	} {
		if redisRow(rw.label) && !slices.ContainsFunc(names, onRedis) {
			continue
		}
		var parts []string
		for i, name := range names {
			if redisRow(rw.label) && !onRedis(name) {
				continue
			}
			var vals []string
			for _, r := range runs[i] {
				vals = append(vals, rw.unit(rw.get(r)))
			}
			parts = append(parts, name+" "+strings.Join(vals, ", "))
		}
		n := slices.Index(names, "notify")
		for _, other := range append([]string{baseName, "raw"}, rw.against...) {
			o := slices.Index(names, other)
			if n < 0 || o < 0 || redisRow(rw.label) {
				continue
			}
			var ratios []string
			for k := range runs[n] {
				ratios = append(ratios, ratio(rw.get(runs[n][k]), rw.get(runs[o][k])))
			}
			parts = append(parts, "notify ÷ "+other+" "+strings.Join(ratios, ", "))
		}
		for _, other := range []string{"centrifuge-redis", "centrifuge-redis-full"} {
			nr, cr := slices.Index(names, "notify-redis"), slices.Index(names, other)
			if nr < 0 || cr < 0 {
				continue
			}
			var ratios []string
			for k := range runs[nr] {
				ratios = append(ratios, ratio(rw.get(runs[nr][k]), rw.get(runs[cr][k])))
			}
			parts = append(parts, "notify-redis ÷ "+other+" "+strings.Join(ratios, ", "))
		}
		fmt.Fprintf(w, "- %s: %s\n", rw.label, strings.Join(parts, "; "))
	}
}
