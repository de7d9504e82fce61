// Command loadgen runs the notify benchmark: for each server variant it starts the server on
// its own core, runs scenarios S1 to S6 against it (and, for the Redis variants, S7 and S8 on
// two nodes) and prints a table with every figure and its ratio to the raw limit (and, with
// -base-server, notify's ratio to notify at another commit; with both Redis variants,
// notify-redis's ratio to centrifuge-redis). It exits non-zero when a server fails to start, a
// connection fails or deliveries are missing (outside S6). bench/run wraps it; see
// bench/README.md.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gonotify/notify/bench/internal/payload"
)

// plan sizes the scenarios.
type plan struct {
	n          int           // connections, one user each
	s2Count    int           // S2 per-user sends
	s2Limit    int           // seconds the server may spend generating S2 sends
	s3Count    int           // S3 broadcasts
	s5Rate     int           // S5 sends per second
	s5Secs     int           // S5 duration
	size       int           // payload bytes
	floodBytes int           // S6: bytes sent to each non-reading client before the S3 load
	s9Readers  int           // S9: clients that read
	s9Stalled  int           // S9: clients that stop reading
	s9Secs     int           // S9: seconds of broadcasts
	wait       time.Duration // longest wait for a scenario's deliveries
}

var (
	full  = plan{n: 5000, s2Count: 100_000, s2Limit: 15, s3Count: 200, s5Rate: 20_000, s5Secs: 3, size: 200, floodBytes: 8 << 20, s9Readers: 50, s9Stalled: 500, s9Secs: 10, wait: 60 * time.Second}
	quick = plan{n: 1000, s2Count: 20_000, s2Limit: 4, s3Count: 200, s5Rate: 20_000, s5Secs: 1, size: 200, floodBytes: 8 << 20, s9Readers: 50, s9Stalled: 500, s9Secs: 4, wait: 20 * time.Second}
)

var (
	serverBin   = flag.String("server", "", "path to the server binary (bench/cmd/server)")
	serverCPU   = flag.String("server-cpu", "0", "CPU list for the server (taskset -c); empty: no pinning")
	quickMode   = flag.Bool("quick", false, "1,000 connections and smaller scenarios: under a minute")
	variants    = flag.String("variants", "notify,melody,centrifuge,raw", "server variants, comma-separated (also notify-sse, centrifuge-history, and notify-redis, centrifuge-redis, centrifuge-redis-full: need -redis); raw gives the ratios")
	conns       = flag.Int("n", 0, "connections (default 5,000; 1,000 with -quick)")
	profDir     = flag.String("pprof", "", "directory: profile a server (CPU and execution trace per scenario, heap at S4)")
	profVariant = flag.String("pprof-variant", "notify", "the variant -pprof profiles")
	gogc        = flag.String("gogc", "", "GOGC for every server variant (a diagnostic: how much of a figure is the garbage collector); empty: Go's default, 100, whatever the environment's GOGC")
	memRate     = flag.Int("memprofilerate", 0, "with -pprof: the profiled server's runtime.MemProfileRate (256: every idle connection's allocations; slows it down)")
	basePort    = flag.Int("port", 9100, "first port; each variant takes the next")
	logDir      = flag.String("logs", os.TempDir(), "directory for the servers' logs")
	rounds      = flag.Int("rounds", 1, "run every variant this many times, in turn, and report each figure's median")
	selfProf    = flag.String("cpuprofile", "", "write the load generator's own CPU profile to this file")
	only        = flag.String("only", "", "delivery scenarios to run, comma-separated (S2,S3,S5,S6,S9, and S7,S8 for the Redis variants); empty: all. S1 and S4 always run")
	baseServer  = flag.String("base-server", "", "a server binary built at another commit (bench/run -base REF builds it): run as variant notify-base right after notify in every round, started exactly like notify")
	baseRef     = flag.String("base-ref", "", "the commit -base-server was built at, for the table")
	senders     = flag.Int("senders", 1, "goroutines in the server that call Send (centrifuge: Publish) concurrently in the per-user scenarios (warm-up, S2, S5, S7, S8), as concurrent request handlers would")
	storm       = flag.Bool("storm", false, "run the restart storm instead of the scenarios: notify-redis, sessions on node A, A shut down, all reconnect to node B (needs -redis)")
	stormRate   = flag.Int("storm-rate", 2000, "-storm: per-user sends/s node B makes throughout")
	s9Stalled   = flag.Int("s9-stalled", -1, "S9: clients that stop reading (default 500; 0: the readers alone, for reference)")
	pace        = flag.String("pace", "spin", "how the server's paced sender (S5, S8) waits for the next send: spin (yield and poll, no timer: the tail is the hub's, and the server's process spends about a core) or sleep (a timer: the server's CPU time is the sends')")
	redisURL    = flag.String("redis", "", "the Redis of the Redis variants (bench/run starts a private one and sets this); flushed before each of them")
)

// sseName is notify's server with its clients on the server-sent events stream.
const sseName = "notify-sse"

// baseName is the variant that runs -base-server: notify at another commit.
const baseName = "notify-base"

// kind is the server variant a name runs: notify-base runs notify (from -base-server).
func kind(name string) string {
	if name == baseName {
		return "notify"
	}
	return name
}

// variantNames is -variants, with notify-base right after notify when -base-server is set.
func variantNames() []string {
	names := slices.DeleteFunc(strings.Split(*variants, ","), func(v string) bool { return v == baseName })
	if *baseServer == "" {
		return names
	}
	i := slices.Index(names, "notify")
	if i < 0 {
		log.Fatal("-base-server (bench/run -base) compares with notify: -variants must include notify")
	}
	return slices.Insert(names, i+1, baseName)
}

func main() {
	log.SetFlags(0)
	flag.Parse()
	http.DefaultClient.Timeout = 2 * time.Minute
	if *selfProf != "" {
		f, err := os.Create(*selfProf)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if *serverBin == "" {
		log.Fatal("-server is required")
	}
	p := full
	if *quickMode {
		p = quick
	}
	if *conns > 0 {
		p.n = *conns
	}
	if *s9Stalled >= 0 {
		p.s9Stalled = *s9Stalled
	}
	if *storm {
		runStorm(p, *basePort)
		return
	}
	names := variantNames()
	if *scaleMode {
		if !runScale(p, names) {
			os.Exit(1)
		}
		return
	}
	if g, ok := os.LookupEnv("GOGC"); ok && *gogc == "" {
		log.Printf("GOGC=%s in the environment: not passed to the servers, which run with Go's default (-gogc N sets it)", g)
	}
	runs := make([][]*result, len(names)) // each variant's results, one per round
	failed := false
	for round := range max(1, *rounds) {
		for i, v := range names {
			start := time.Now()
			r := runVariant(v, *basePort+i, p)
			log.Printf("%s: round %d done in %s", v, round+1, time.Since(start).Round(time.Millisecond))
			for _, e := range r.errs {
				log.Printf("%s: FAIL: %s", v, e)
				failed = true
			}
			runs[i] = append(runs[i], r)
		}
	}
	results := make([]*result, len(names))
	for i := range names {
		results[i] = median(runs[i])
	}
	printTable(os.Stdout, p, results)
	if *rounds > 1 {
		printSpread(os.Stdout, names, runs)
	}
	if failed {
		pprof.StopCPUProfile() // a no-op without -cpuprofile
		os.Exit(1)
	}
}

// result holds one variant's figures.
type result struct {
	name string
	errs []string
	gogc []int64 // the GOGC each round's server reported (none from a server that does not)

	s1Rate float64
	s1GCs  float64 // garbage collections the server completed during S1
	// CPU time per connection opened in S1: the server's, and (Redis variants) the
	// redis-server's; 0 where not measured
	s1NodeCPU, s1RedisCPU float64
	// Redis variants: the CPU time an idle session costs per second, the redis-server's and
	// the server's, over idleWindow (presence upkeep and the like); 0 where not measured
	idleRedisCPU, idleNodeCPU float64
	s4PerConn, s4Heap         float64 // bytes per connection: RSS, Go heap in use
	s4Stack, s4Goroutines     float64
	s2, s3, s5, s6            delivery
	s7, s8                    delivery // two nodes (Redis variants): sent on node A, read on node B
	s6Fate                    string
	s6RSSBefore, s6RSSPeak    uint64
	s6RSSAfter, s6Slow        uint64
	s6Dropped                 uint64
	s2Sent, s7Sent            int
	s9                        nonReaders
}

type delivery struct {
	ok                bool
	rate              float64 // deliveries per second
	p50, p99, p999    time.Duration
	framesPerEvent    float64
	writesPerEvent    float64
	delivered, frames int64
	gcs               float64 // garbage collections the server completed during the scenario
	// sends/s the server generated: sends over the time from the first call to the return of
	// the last (S5, S8: whether the pace was kept)
	sendRate float64
	// Redis variants: per send, the commands Redis processed (scripts' calls included) and its
	// read events (INFO stats: redisOK)
	redisOK               bool
	redisCmds, redisReads float64
	// notify-redis: per send, the round trips the sending node's Redis client made (a pipeline
	// is one) and the commands in them (tripsOK)
	tripsOK              bool
	redisTrips, tripCmds float64
	// CPU time per delivery, in ns: the server's (both nodes' in the two-node scenarios), and
	// the redis-server's (Redis variants); and the server's CPU over the scenario's wall time,
	// in cores (0.5: half of one). 0 where not measured.
	nodeCPU, redisCPU, nodeCores float64
}

type server struct {
	base   string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has ended
}

func (s *server) stats() (st serverStats, err error) {
	resp, err := http.Get(s.base + "/bench/stats")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

func (s *server) post(path string) ([]byte, error) {
	resp, err := http.Post(s.base+path, "text/plain", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s %s", path, resp.Status, b)
	}
	return b, err
}

type serverStats struct {
	Conns      int     `json:"conns"`
	Slow       uint64  `json:"slow"`
	Dropped    uint64  `json:"dropped"`
	RSS        uint64  `json:"rss"`
	Syscw      uint64  `json:"syscw"`
	Goroutines int     `json:"goroutines"`
	HeapInuse  uint64  `json:"heap_inuse"`
	StackInuse uint64  `json:"stack_inuse"`
	NumGC      uint32  `json:"num_gc"`
	CPU        int64   `json:"cpu_ns"`      // 0 from a server built before /bench/stats reported it
	GOGC       *int64  `json:"gogc"`        // nil from a server built before /bench/stats reported it
	RedisTrips *uint64 `json:"redis_trips"` // notify-redis only
	RedisCmds  *uint64 `json:"redis_cmds"`
}

// profiled reports whether -pprof profiles the variant: -pprof-variant, and notify-base with
// notify, so that both are started alike.
func profiled(variant string) bool {
	return *profDir != "" && (variant == *profVariant || variant == baseName && *profVariant == "notify")
}

// serverEnv is the servers' environment: the load generator's without GOGC, so that every
// server runs with Go's default unless -gogc says otherwise.
func serverEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOGC=") })
	if *gogc != "" {
		env = append(env, "GOGC="+*gogc)
	}
	return env
}

// startServer starts the variant's server on port; node names the second node of the
// two-node scenarios ("A"), "" the first, which the clients connect to.
func startServer(variant, node string, port int) (*server, error) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	bin := *serverBin
	if variant == baseName {
		bin = *baseServer
	}
	args := []string{bin, "-variant", kind(variant), "-addr", addr}
	if onRedis(variant) {
		args = append(args, "-redis", *redisURL)
	}
	if profiled(variant) && node == "" {
		dir := *profDir
		if variant == baseName { // it names its files notify-*, like notify's
			dir = filepath.Join(dir, baseName)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
		}
		args = append(args, "-pprof", dir, "-memprofilerate", strconv.Itoa(*memRate))
	}
	if *serverCPU != "" {
		args = append([]string{"taskset", "-c", *serverCPU}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = serverEnv()
	logName, label := "bench-"+variant, variant
	if node != "" {
		logName += "-" + node
		label += " (node " + node + ")"
	}
	lf, err := os.Create(filepath.Join(*logDir, logName+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{base: "http://" + addr, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	for range 100 {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("server %s exited at start (log: %s)", label, lf.Name())
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := s.stats(); err == nil {
			return s, nil
		}
	}
	s.stop()
	return nil, fmt.Errorf("server %s did not answer on %s within 10s (log: %s)", label, addr, lf.Name())
}

func (s *server) stop() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// want reports whether the delivery scenario runs (see -only).
func want(scenario string) bool {
	return *only == "" || slices.Contains(strings.Split(*only, ","), scenario)
}

func runVariant(name string, port int, p plan) *result {
	r := &result{name: name}
	fail := func(format string, a ...any) { r.errs = append(r.errs, fmt.Sprintf(format, a...)) }
	if onRedis(name) {
		if err := flushRedis(); err != nil {
			fail("%v", err)
			return r
		}
	}
	srv, err := startServer(name, "", port)
	if err != nil {
		fail("%v", err)
		return r
	}
	defer srv.stop()
	prof := func(q string) {
		if profiled(name) {
			if _, err := srv.post("/bench/prof?" + q); err != nil {
				log.Printf("profile: %v", err)
			}
		}
	}

	// S4 baseline, then S1.
	for range 3 {
		srv.post("/bench/gc")
	}
	time.Sleep(200 * time.Millisecond)
	st0, err := srv.stats()
	if err != nil {
		fail("stats: %v", err)
		return r
	}
	if st0.GOGC != nil {
		r.gogc = append(r.gogc, *st0.GOGC)
	}
	tokens := make([]string, p.n)
	for i := range tokens {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "u" + strconv.Itoa(i), "exp": time.Now().Add(time.Hour).Unix()}).SignedString(payload.Secret)
		if err != nil {
			log.Fatal(err)
		}
		tokens[i] = tok
	}
	url := endpoint(name, port)
	clients := make([]*client, p.n)
	defer func() {
		srv.stop()
		for _, c := range clients {
			if c != nil {
				c.ws.Close()
			}
		}
	}()
	log.Printf("%s: S1 open %d connections", name, p.n)
	var r1 redisStats
	if onRedis(name) {
		r1 = readRedisStats()
	}
	prof("start=S1")
	start := time.Now()
	var next, dialErrs int
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= p.n {
					return
				}
				c, err := dial(url, tokens[i], proto(name))
				if err != nil {
					mu.Lock()
					dialErrs++
					firstErr = err
					mu.Unlock()
					continue
				}
				clients[i] = c
			}
		})
	}
	wg.Wait()
	r.s1Rate = float64(p.n) / time.Since(start).Seconds()
	prof("stop")
	if st, err := srv.stats(); err == nil {
		r.s1GCs = float64(st.NumGC - st0.NumGC)
		if st.CPU > 0 && st0.CPU > 0 {
			r.s1NodeCPU = float64(st.CPU-st0.CPU) / float64(p.n)
		}
	}
	if onRedis(name) {
		if r2 := readRedisStats(); r1.cpuOK && r2.cpuOK {
			r.s1RedisCPU = float64(r2.cpu-r1.cpu) / float64(p.n)
		}
	}
	if dialErrs > 0 {
		fail("S1: %d of %d connections failed, e.g. %v", dialErrs, p.n, firstErr)
		return r
	}
	// A connection counts as open once upgraded, for every variant; notify's welcome frame
	// follows, and must have arrived before the deliveries are measured.
	welcomeBy := time.After(10 * time.Second)
	for _, c := range clients {
		select {
		case <-c.ready:
		case <-welcomeBy:
			fail("S1: a connection got no welcome within 10s")
			return r
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := srv.stats()
		if err == nil && st.Conns == p.n {
			break
		}
		if time.Now().After(deadline) {
			fail("S1: server reports %d connections, want %d", st.Conns, p.n)
			return r
		}
	}

	// S4: idle memory per connection, after the collections an idle server would run (each
	// also shrinks goroutine stacks that use less than a quarter of their size).
	time.Sleep(time.Second)
	for range 3 {
		srv.post("/bench/gc")
	}
	time.Sleep(200 * time.Millisecond)
	stN, err := srv.stats()
	if err != nil {
		fail("stats: %v", err)
		return r
	}
	perConn := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(p.n) }
	r.s4PerConn = perConn(st0.RSS, stN.RSS)
	r.s4Heap = perConn(st0.HeapInuse, stN.HeapInuse)
	r.s4Stack = perConn(st0.StackInuse, stN.StackInuse)
	r.s4Goroutines = float64(stN.Goroutines-st0.Goroutines) / float64(p.n)
	prof("heap=S4")
	if onRedis(name) {
		r.idleRedisCPU, r.idleNodeCPU = idleUpkeep(srv, p.n)
	}

	// measure runs one delivery scenario: sends generated by the server from (srv, or node A in
	// the two-node scenarios), expected deliveries per send, and the set of reading clients.
	measure := func(label, query string, perSend int, strict bool, from *server) (delivery, int) {
		var d delivery
		ph := newPhase()
		current.Store(ph)
		defer current.Store(nil)
		prof("heap=" + label + "-before")
		before, _ := srv.stats()
		fromBefore := before
		if from != srv {
			fromBefore, _ = from.stats()
		}
		var rBefore redisStats
		if onRedis(name) {
			rBefore = readRedisStats()
		}
		prof("start=" + label)
		t0 := time.Now()
		b, err := from.post("/bench/send?" + query)
		if err != nil {
			fail("%s: %v", label, err)
			prof("stop")
			return d, 0
		}
		var sr struct {
			Sent      int
			ElapsedNS int64 `json:"elapsed_ns"`
			Senders   int
		}
		json.Unmarshal(b, &sr)
		log.Printf("%s: %s: the server generated %d sends in %s", name, label, sr.Sent, time.Duration(sr.ElapsedNS).Round(time.Millisecond))
		if asked := sendersIn(query); asked > 1 && sr.Senders != asked {
			fail("%s: the server made its sends from %d goroutines, not %d (-senders): its bench/cmd/server predates -senders", label, sr.Senders, asked)
		}
		if sr.ElapsedNS > 0 {
			d.sendRate = float64(sr.Sent) / (float64(sr.ElapsedNS) / 1e9)
		}
		want := int64(sr.Sent * perSend)
		ph.expected.Store(want)
		ph.check()
		select {
		case <-ph.done:
			d.ok = true
		case <-time.After(p.wait):
		}
		prof("stop")
		prof("heap=" + label + "-after")
		d.delivered, d.frames = ph.got.Load(), ph.frames.Load()
		if !d.ok {
			// What the server says: connections left, slow-consumer closes and dropped events
			// so far (centrifuge-redis: messages its Redis broker dropped).
			var state string
			if st, err := srv.stats(); err == nil {
				state = fmt.Sprintf(" (server: %d connections, %d closed as slow consumers, %d events dropped)", st.Conns, st.Slow, st.Dropped)
			}
			if strict {
				fail("%s: %d of %d deliveries after %s%s", label, d.delivered, want, p.wait, state)
			} else {
				log.Printf("%s: %s: %d of %d deliveries after %s%s", name, label, d.delivered, want, p.wait, state)
			}
			return d, sr.Sent
		}
		after, _ := srv.stats()
		fromAfter := after
		if from != srv {
			fromAfter, _ = from.stats()
		}
		if onRedis(name) && sr.Sent > 0 {
			if rAfter := readRedisStats(); rBefore.ok && rAfter.ok {
				d.redisOK = true
				d.redisCmds = float64(rAfter.commands-rBefore.commands) / float64(sr.Sent)
				d.redisReads = float64(rAfter.reads-rBefore.reads) / float64(sr.Sent)
				if rBefore.cpuOK && rAfter.cpuOK && d.delivered > 0 {
					d.redisCPU = float64(rAfter.cpu-rBefore.cpu) / float64(d.delivered)
				}
			}
			if fromBefore.RedisTrips != nil && fromAfter.RedisTrips != nil && fromBefore.RedisCmds != nil && fromAfter.RedisCmds != nil {
				d.tripsOK = true
				d.redisTrips = float64(*fromAfter.RedisTrips-*fromBefore.RedisTrips) / float64(sr.Sent)
				d.tripCmds = float64(*fromAfter.RedisCmds-*fromBefore.RedisCmds) / float64(sr.Sent)
			}
		}
		wall := float64(ph.end.Load() - t0.UnixNano())
		d.rate = float64(d.delivered) / (wall / 1e9)
		if before.CPU > 0 && after.CPU > 0 {
			cpu := float64(after.CPU - before.CPU)
			if from != srv && fromBefore.CPU > 0 && fromAfter.CPU > 0 {
				cpu += float64(fromAfter.CPU - fromBefore.CPU)
			}
			d.nodeCPU = cpu / float64(d.delivered)
			d.nodeCores = cpu / wall
		}
		d.framesPerEvent = float64(d.frames) / float64(d.delivered)
		d.writesPerEvent = float64(after.Syscw-before.Syscw) / float64(d.delivered)
		d.gcs = float64(after.NumGC - before.NumGC)
		var lat []int64
		for _, c := range clients {
			lat = append(lat, c.take()...)
		}
		slices.Sort(lat)
		q := func(f float64) time.Duration {
			if len(lat) == 0 {
				return 0
			}
			return time.Duration(lat[min(len(lat)-1, int(math.Ceil(f*float64(len(lat))))-1)])
		}
		d.p50, d.p99, d.p999 = q(0.50), q(0.99), q(0.999)
		return d, sr.Sent
	}

	settle := func() { time.Sleep(500 * time.Millisecond) }
	// The per-user scenarios' sends come from -senders goroutines of the server.
	userQ := ""
	if *senders > 1 {
		userQ = fmt.Sprintf("&senders=%d", *senders)
	}
	s2Query := fmt.Sprintf("kind=user&count=%d&users=%d&size=%d&limit=%d%s", p.s2Count, p.n, p.size, p.s2Limit, userQ)
	s5Query := fmt.Sprintf("kind=user&count=%d&rate=%d&users=%d&size=%d&limit=%d%s&pace=%s",
		p.s5Rate*p.s5Secs, p.s5Rate, p.n, p.size, p.s5Secs+5, userQ, *pace)
	// Warm up after S4's collections (the heap returned to the OS, stacks shrunk): one send
	// per user, not counted.
	measure("warm-up", fmt.Sprintf("kind=user&count=%d&users=%d&size=%d%s", p.n, p.n, p.size, userQ), 1, true, srv)
	settle()
	if want("S5") {
		log.Printf("%s: S5 paced sends %d/s for %ds", name, p.s5Rate, p.s5Secs)
		r.s5, _ = measure("S5", s5Query, 1, true, srv)
		settle()
	}
	if want("S2") {
		log.Printf("%s: S2 %d per-user sends across %d users", name, p.s2Count, p.n)
		r.s2, r.s2Sent = measure("S2", s2Query, 1, true, srv)
		settle()
	}
	if want("S3") {
		log.Printf("%s: S3 %d broadcasts to %d connections", name, p.s3Count, p.n)
		r.s3, _ = measure("S3", fmt.Sprintf("kind=broadcast&count=%d&size=%d", p.s3Count, p.size), p.n, true, srv)
		settle()
	}
	// S7 and S8, Redis variants only: a second server of the variant on the same Redis, node A,
	// makes the sends; the clients stay connected to the first, node B. Node A runs only for
	// these two scenarios, pinned to the server's CPU like node B.
	if onRedis(name) && (want("S7") || want("S8")) {
		nodeA, err := startServer(name, "A", port+50)
		if err != nil {
			fail("S7/S8 node A: %v", err)
		} else {
			if want("S7") {
				log.Printf("%s: S7 %d per-user sends on node A to sessions on node B", name, p.s2Count)
				r.s7, r.s7Sent = measure("S7", s2Query, 1, true, nodeA)
				settle()
			}
			if want("S8") {
				log.Printf("%s: S8 paced sends %d/s for %ds on node A to sessions on node B", name, p.s5Rate, p.s5Secs)
				r.s8, _ = measure("S8", s5Query, 1, true, nodeA)
				settle()
			}
			nodeA.stop()
		}
	}
	// S9 last: it closes S1's connections and opens its own.
	defer func() {
		if !want("S9") || len(r.errs) > 0 {
			return
		}
		log.Printf("%s: S9 %d B broadcasts at %d/s for %ds to %d readers and %d clients that stop reading",
			name, s9Size, s9Rate, p.s9Secs, p.s9Readers, p.s9Stalled)
		nr, err := runNonReaders(name, srv, url, p, clients)
		if err != nil {
			fail("%v", err)
		}
		clear(clients)
		r.s9 = nr
	}()
	if !want("S6") {
		return r
	}

	// S6: 1% of the clients stop reading; each is sent floodBytes of its own events (more than
	// a 1 MiB queue plus socket buffers), then the S3 load runs for the others.
	log.Printf("%s: S6 S3 again with 1%% of the clients not reading", name)
	var slowOnes []*client
	for i := 0; i < p.n; i += 100 {
		clients[i].slow.Store(true)
		slowOnes = append(slowOnes, clients[i])
	}
	srv.post("/bench/gc")
	st6, _ := srv.stats()
	r.s6RSSBefore, r.s6RSSPeak = st6.RSS, st6.RSS
	stopPoll := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopPoll:
				return
			case <-t.C:
				if st, err := srv.stats(); err == nil {
					r.s6RSSPeak = max(r.s6RSSPeak, st.RSS)
				}
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	const floodSize = 64 << 10
	if _, err := srv.post(fmt.Sprintf("/bench/send?kind=user&count=%d&users=%d&stride=100&size=%d&ephemeral=1",
		len(slowOnes)*(p.floodBytes/floodSize), len(slowOnes), floodSize)); err != nil {
		fail("S6 flood: %v", err)
	}
	r.s6, _ = measure("S6", fmt.Sprintf("kind=broadcast&count=%d&size=%d", p.s3Count, p.size), p.n-len(slowOnes), false, srv)
	close(stopPoll)
	<-polled
	// The slow clients' fate: they read again, and find how their connection ended.
	for _, c := range slowOnes {
		close(c.resume)
	}
	codes := map[int]int{}
	giveUp := time.Now().Add(15 * time.Second)
	open := 0
	for _, c := range slowOnes {
		select {
		case <-c.ended:
			codes[c.code]++
		case <-time.After(time.Until(giveUp)):
			open++
		}
	}
	srv.post("/bench/gc")
	stEnd, _ := srv.stats()
	r.s6RSSAfter, r.s6Slow, r.s6Dropped = stEnd.RSS, stEnd.Slow, stEnd.Dropped
	var keys []int
	for k := range codes {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var fate []string
	for _, k := range keys {
		what := strconv.Itoa(k)
		if k == -1 {
			what = "no close frame"
		}
		fate = append(fate, fmt.Sprintf("%d closed %s", codes[k], what))
	}
	if open > 0 {
		fate = append(fate, fmt.Sprintf("%d still open after 15s", open))
	}
	r.s6Fate = fmt.Sprintf("%d slow: %s", len(slowOnes), strings.Join(fate, ", "))
	return r
}

// endpoint is the URL the variant's clients connect to: notify-sse's event stream, or the
// WebSocket endpoint.
func endpoint(name string, port int) string {
	if name == sseName {
		return "http://127.0.0.1:" + strconv.Itoa(port) + "/sse"
	}
	return "ws://127.0.0.1:" + strconv.Itoa(port) + "/ws"
}

// sendersIn is the senders a /bench/send query asks for (1 when it does not).
func sendersIn(query string) int {
	for kv := range strings.SplitSeq(query, "&") {
		if v, ok := strings.CutPrefix(kv, "senders="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return 1
}
