// Command server is one of the server variants the load generator measures: notify
// (-variant notify; notify-sse is the same server, its clients on the server-sent events
// stream GET /sse), melody used bare (melody), centrifuge and the raw limit (raw), and, on the
// Redis at -redis URL, notify with adapters/redisbroker (notify-redis) and centrifuge with its
// Redis broker (centrifuge-redis); and the like-for-like references centrifuge-history
// (centrifuge in memory with notify's per-user history, positioning and recovery) and
// centrifuge-redis-full (centrifuge-redis with Redis presence, positioning and recovery on the
// personal channel). Besides the WebSocket endpoint GET /ws it serves the bench's
// control endpoints:
//
//	POST /bench/send   generate sends (kind=user|broadcast, count, size, users, stride, rate, limit, senders)
//	GET  /bench/stats  connections, slow-consumer closes, RSS, write syscalls, collections, GOGC, Redis calls
//	POST /bench/gc     collect garbage and return freed memory to the OS
//	POST /bench/prof   start=<name> / stop a CPU profile (only with -pprof DIR)
//	POST /bench/shutdown  notify variants: Hub.Shutdown (goaway, then close 1001), within 30s
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	rpprof "runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gonotify/notify/bench/internal/payload"
	"github.com/gonotify/notify/bench/internal/proc"
)

// variant is a server under test.
type variant interface {
	// ws serves GET /ws: verify the bearer token, upgrade, serve the session.
	ws() http.Handler
	// sendUser delivers msg (a payload) to every connection of the user.
	// With ephemeral set, notify keeps no history of the event.
	sendUser(user string, msg []byte, ephemeral bool)
	// broadcast delivers msg to every connection.
	broadcast(msg []byte)
	conns() int
	// slow counts connections closed as slow consumers; dropped counts events dropped.
	slow() uint64
	dropped() uint64
}

func main() {
	kind := flag.String("variant", "notify", "notify, notify-sse, melody, centrifuge, centrifuge-history, raw, notify-redis, centrifuge-redis or centrifuge-redis-full")
	redisURL := flag.String("redis", "", "the Redis of the Redis variants (notify-redis, centrifuge-redis, centrifuge-redis-full), such as redis://127.0.0.1:6379")
	addr := flag.String("addr", "127.0.0.1:9100", "listen address")
	profDir := flag.String("pprof", "", "directory for CPU and heap profiles; also serves /debug/pprof/")
	memRate := flag.Int("memprofilerate", 0, "with -pprof: runtime.MemProfileRate (256 shows every idle connection's allocations; slows the server)")
	flag.Parse()

	var v variant
	var rc *redisCounter // notify-redis's Redis calls
	if strings.Contains(*kind, "-redis") && *redisURL == "" {
		log.Fatalf("-variant %s needs -redis URL", *kind)
	}
	switch *kind {
	case "notify", "notify-sse":
		v = newNotify()
	case "melody":
		v = newMelody()
	case "raw":
		v = newRaw()
	case "centrifuge":
		v = newCentrifuge()
	case "centrifuge-history":
		v = newCentrifugeHistory()
	case "notify-redis":
		v, rc = newNotifyRedis(*redisURL)
	case "centrifuge-redis":
		v = newCentrifugeRedis(*redisURL)
	case "centrifuge-redis-full":
		v = newCentrifugeRedisFull(*redisURL)
	default:
		log.Fatalf("unknown variant %q", *kind)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ws", v.ws())
	if *kind == "notify-sse" {
		// the same server, its sessions on the event stream: Hub.SSE as nethttp.Mount mounts it
		mux.Handle("GET /sse", v.ws())
		mux.Handle("POST /sse/{session}", v.ws())
	}
	mux.HandleFunc("POST /bench/send", func(w http.ResponseWriter, r *http.Request) { send(w, r, v) })
	mux.HandleFunc("GET /bench/stats", func(w http.ResponseWriter, r *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st := Stats{Conns: v.conns(), Slow: v.slow(), Dropped: v.dropped(),
			RSS: procField("/proc/self/status", "VmRSS:") * 1024, Syscw: procField("/proc/self/io", "syscw:"),
			Goroutines: runtime.NumGoroutine(), HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse, NumGC: ms.NumGC,
			GOGC: gcPercent()}
		if cpu, ok := proc.CPU("self"); ok {
			st.CPU = int64(cpu)
		}
		if rc != nil {
			trips, cmds := rc.trips.Load(), rc.cmds.Load()
			st.RedisTrips, st.RedisCmds = &trips, &cmds
		}
		json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("POST /bench/shutdown", func(w http.ResponseWriter, r *http.Request) {
		sd, ok := v.(interface{ shutdown(context.Context) error })
		if !ok {
			http.Error(w, *kind+" has no shutdown", 400)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		if err := sd.shutdown(ctx); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("POST /bench/gc", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
	})
	if *profDir != "" {
		if *memRate > 0 {
			runtime.MemProfileRate = *memRate
		}
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		var mu sync.Mutex
		var f, tfile *os.File
		mux.HandleFunc("POST /bench/prof", func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			name := filepath.Join(*profDir, *kind+"-"+r.URL.Query().Get("start"))
			switch {
			case r.URL.Query().Has("heap"):
				runtime.GC()
				h, err := os.Create(filepath.Join(*profDir, *kind+"-"+r.URL.Query().Get("heap")+".heap.pprof"))
				if err == nil {
					err = rpprof.WriteHeapProfile(h)
					h.Close()
				}
				if err != nil {
					http.Error(w, err.Error(), 500)
				}
			case r.URL.Query().Has("start") && f == nil:
				var err error
				if f, err = os.Create(name + ".cpu.pprof"); err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				if err := rpprof.StartCPUProfile(f); err != nil {
					http.Error(w, err.Error(), 500)
				}
				if tf, err := os.Create(name + ".trace"); err == nil {
					trace.Start(tf)
					tfile = tf
				}
			case r.URL.Query().Has("stop") && f != nil:
				rpprof.StopCPUProfile()
				f.Close()
				if tfile != nil {
					trace.Stop()
					tfile.Close()
					tfile = nil
				}
				f = nil
			}
		})
	}
	log.Printf("%s server on %s", *kind, *addr)
	log.Fatal(http.ListenAndServe(*addr, mux))
}

// Stats is the answer of GET /bench/stats.
type Stats struct {
	Conns      int    `json:"conns"`
	Slow       uint64 `json:"slow"`
	Dropped    uint64 `json:"dropped"`
	RSS        uint64 `json:"rss"`
	Syscw      uint64 `json:"syscw"` // write and writev system calls of the process
	Goroutines int    `json:"goroutines"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	NumGC      uint32 `json:"num_gc"`         // garbage collections completed since the server started
	CPU        int64  `json:"cpu_ns"`         // CPU time (user and system) the process has spent, from /proc
	GOGC       *int64 `json:"gogc,omitempty"` // the collector's GOGC as the runtime has it (-1: off)
	// Round trips to Redis and commands sent in them (a pipeline is one round trip), counted by
	// a go-redis hook on the client the variant's broker uses: notify-redis only.
	RedisTrips *uint64 `json:"redis_trips,omitempty"`
	RedisCmds  *uint64 `json:"redis_cmds,omitempty"`
}

// gcPercent reports the GOGC in effect, whoever set it (the environment or debug.SetGCPercent),
// so that the load generator can check that every server runs with the GOGC it asked for.
func gcPercent() *int64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return nil
	}
	p := int64(s[0].Value.Uint64()) // GOGC=off is stored as -1
	return &p
}

// SendResult is the answer of POST /bench/send.
type SendResult struct {
	Sent      int   `json:"sent"`
	ElapsedNS int64 `json:"elapsed_ns"`
	Senders   int   `json:"senders"` // goroutines that called sendUser or broadcast
}

// send generates the sends of one scenario. Every loop stops at count sends or after limit.
// With senders=N (N > 1, per-user sends only), N goroutines call sendUser concurrently, as
// concurrent request handlers would; otherwise the handler's goroutine makes every call.
func send(w http.ResponseWriter, r *http.Request, v variant) {
	q := r.URL.Query()
	num := func(k string, d int) int {
		if n, err := strconv.Atoi(q.Get(k)); err == nil {
			return n
		}
		return d
	}
	count, size, users, stride, rate := num("count", 0), num("size", 200), num("users", 1), num("stride", 1), num("rate", 0)
	limit := time.Duration(num("limit", 60)) * time.Second
	kind, ephemeral := q.Get("kind"), q.Get("ephemeral") == "1"
	if kind != "user" && kind != "broadcast" {
		http.Error(w, "kind must be user or broadcast", 400)
		return
	}
	senders := max(1, num("senders", 1))
	if kind != "user" {
		senders = 1
	}
	names := make([]string, users)
	for i := range names {
		names[i] = "u" + strconv.Itoa(i*stride)
	}
	start := time.Now()
	// yield is what a paced loop does once the sends due by now are made: with pace=sleep it
	// sleeps until the next one is due, and at least a millisecond, so that the process's CPU
	// time is the sends' (and a thousand wake-ups a second); by default it yields and spins
	// (see below).
	sleepPace := q.Get("pace") == "sleep"
	yield := func(sent int) {
		if !sleepPace {
			runtime.Gosched()
			return
		}
		// At least a millisecond: the sends due by then go together, and the timer wakes the
		// sender a thousand times a second at most, whatever the rate.
		next := time.Duration(float64(sent+1) / float64(rate) * float64(time.Second))
		time.Sleep(max(next-time.Since(start), time.Millisecond))
	}
	deadline := start.Add(limit)
	// one makes send number i.
	one := func(i int) {
		msg := payload.Make(size, time.Now().UnixNano())
		if kind == "user" {
			v.sendUser(names[i%users], msg, ephemeral)
		} else {
			v.broadcast(msg)
		}
	}
	sent := 0
	switch {
	case senders == 1 && rate <= 0:
		for sent < count && (sent%64 != 0 || time.Now().Before(deadline)) {
			one(sent)
			sent++
		}
	case senders == 1:
		// Paced: the sends due by now, then a yield to every other goroutine. No timer: on a
		// server with one P a timer's wake-up can wait for the garbage collector's idle worker
		// for up to 10 ms (the runtime's preemption period), which would measure the pacing
		// rather than the server; a real server's sends follow network input, which the
		// idle worker does give way to.
		for sent < count && time.Now().Before(deadline) {
			due := min(count, int(time.Since(start).Seconds()*float64(rate)))
			for sent < due && (sent%64 != 0 || time.Now().Before(deadline)) {
				one(sent)
				sent++
			}
			yield(sent)
		}
	case rate <= 0:
		// senders goroutines take the next send number until count or limit.
		var next, done atomic.Int64
		var stop atomic.Bool
		var wg sync.WaitGroup
		for range senders {
			wg.Go(func() {
				for !stop.Load() {
					i := int(next.Add(1) - 1)
					if i >= count {
						return
					}
					if i%64 == 0 && !time.Now().Before(deadline) {
						stop.Store(true)
						return
					}
					one(i)
					done.Add(1)
				}
			})
		}
		wg.Wait()
		sent = int(done.Load())
	default:
		// Paced, with senders goroutines: this one hands out the send numbers as they fall due
		// (without a timer, as above); each sender takes the next one, as a request handler takes
		// the next request. When every sender is busy the pacing waits, and the rate is not kept.
		due := make(chan int, senders)
		var wg sync.WaitGroup
		for range senders {
			wg.Go(func() {
				for i := range due {
					one(i)
				}
			})
		}
		for sent < count && time.Now().Before(deadline) {
			d := min(count, int(time.Since(start).Seconds()*float64(rate)))
			for sent < d && (sent%64 != 0 || time.Now().Before(deadline)) {
				due <- sent
				sent++
			}
			yield(sent)
		}
		close(due)
		wg.Wait()
	}
	json.NewEncoder(w).Encode(SendResult{Sent: sent, ElapsedNS: int64(time.Since(start)), Senders: senders})
}

// procField reads a numeric field of a /proc file ("VmRSS:" of status is in kB).
func procField(path, key string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// userFromToken verifies a bearer token the way notify does (HS256 family, exp required) and
// returns its subject; used by the melody and raw variants.
func userFromToken(r *http.Request) (string, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", fmt.Errorf("no bearer token")
	}
	t, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return payload.Secret, nil },
		jwt.WithValidMethods([]string{"HS256", "HS384", "HS512"}), jwt.WithExpirationRequired())
	if err != nil {
		return "", err
	}
	sub, err := t.Claims.GetSubject()
	if err != nil || sub == "" {
		return "", fmt.Errorf("no subject")
	}
	return sub, nil
}
