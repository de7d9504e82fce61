package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/gonotify/notify/bench/internal/payload"
)

// The restart storm (-storm): n sessions of n users on node A of notify-redis, a sender on
// node B sending per-user events throughout, then node A shut down under its sessions. Every
// session reconnects to node B with its position and recovers. Run twice, on fresh servers: the
// clients as the reference client behaves (they honour the "goaway" frame and reconnect at a
// random time within the window it names) and as a client that ignores it (its first retry
// after 1001 within 0-500 ms: every session of the node at once).

// stormResult is one run of the storm.
type stormResult struct {
	mode          string
	errs          []string
	window        time.Duration // the reconnect window the goaway named (0: ignored)
	allBack       time.Duration // from Shutdown's call until the last session was welcomed on B
	peak          int           // the most welcomes on B within any one second
	retries       int           // reconnects refused or failed, tried again
	sent          int           // events node B sent during the run
	lost, dups    int           // events a session never got / got twice
	notRecovered  int           // welcomes on B with recovered:false
	redisCmds     uint64        // commands Redis processed from Shutdown until all were back
	tripsB        uint64        // round trips node B's Redis client made in that time
	reconnects    int           // welcomes on B
	sendsInWindow float64       // events sent in that time (their commands are in redisCmds)
}

// sendResult is what POST /bench/send answers.
type sendResult struct {
	Sent int `json:"sent"`
}

// stormClient is one session of the storm: it tracks its user stream's position and counts
// the events it missed or got twice.
type stormClient struct {
	token        string
	mu           sync.Mutex
	epoch        string
	last         uint64 // offset of the last event read
	lost         int
	dups         int
	notRecovered int
	welcomes     []time.Time // on node B
	window       time.Duration
	retries      int
}

// frameLine is what the storm reads of a frame's line: a control frame's op and an event's
// position.
type frameLine struct {
	Op        string `json:"op"`
	Epoch     string `json:"epoch"`
	Offset    uint64 `json:"offset"`
	Recovered *bool  `json:"recovered"`
	Reconnect int64  `json:"reconnect"`
}

// session connects to base with the client's position and reads until the connection ends.
// It returns the close code (-1: another error) and whether a welcome arrived.
func (c *stormClient) session(base string, onB bool, onWelcome func()) (code int, welcomed bool, err error) {
	u := base
	c.mu.Lock()
	if c.epoch != "" {
		u += "?" + url.Values{"epoch": {c.epoch}, "offset": {strconv.FormatUint(c.last, 10)}}.Encode()
	}
	c.mu.Unlock()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 256}
	ws, resp, err := d.Dial(u, http.Header{"Authorization": {"Bearer " + c.token}})
	if err != nil {
		if resp != nil {
			err = errors.New(resp.Status)
		}
		return 0, false, err
	}
	defer ws.Close()
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, welcomed, nil
			}
			return -1, welcomed, nil
		}
		for len(msg) > 0 {
			line := msg
			if i := slices.Index(msg, '\n'); i >= 0 {
				line, msg = msg[:i], msg[i+1:]
			} else {
				msg = nil
			}
			var f frameLine
			if json.Unmarshal(line, &f) != nil {
				continue
			}
			c.mu.Lock()
			switch f.Op {
			case "welcome":
				welcomed = true
				if onWelcome != nil {
					onWelcome()
				}
				if onB {
					c.welcomes = append(c.welcomes, time.Now())
					if f.Recovered != nil && !*f.Recovered {
						c.notRecovered++
					}
				}
				if c.epoch == "" || (f.Recovered != nil && !*f.Recovered) {
					c.epoch, c.last = f.Epoch, f.Offset
				}
			case "goaway":
				c.window = time.Duration(f.Reconnect) * time.Second
			case "":
				switch {
				case f.Epoch != c.epoch:
					c.epoch, c.last = f.Epoch, f.Offset
				case f.Offset <= c.last:
					c.dups++
				default:
					c.lost += int(f.Offset - c.last - 1)
					c.last = f.Offset
				}
			}
			c.mu.Unlock()
		}
	}
}

func runStorm(p plan, port int) {
	if *redisURL == "" {
		log.Fatal("-storm needs -redis (bench/run starts one)")
	}
	var results []*stormResult
	for _, honour := range []bool{true, false} {
		results = append(results, stormOnce(p, port, honour))
	}
	fmt.Printf("\nRestart storm: %d sessions on node A (notify-redis), A shut down, every session reconnects to node B and recovers; node B sends %d per-user events/s throughout\n\n", p.n, *stormRate)
	fmt.Printf("| client | reconnect window | all back after | peak welcomes/s on B | retries | recovered:false | events sent | lost | duplicates | Redis commands until all back (sends among them) | node B round trips |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|---|\n")
	failed := false
	for _, r := range results {
		fmt.Printf("| %s | %s | %s | %d | %d | %d | %d | %d | %d | %d (%.0f) | %d |\n", r.mode, r.window, r.allBack.Round(time.Millisecond),
			r.peak, r.retries, r.notRecovered, r.sent, r.lost, r.dups, r.redisCmds, r.sendsInWindow, r.tripsB)
		for _, e := range r.errs {
			log.Printf("storm %s: FAIL: %s", r.mode, e)
			failed = true
		}
	}
	if failed {
		log.Fatal("storm: failed")
	}
}

func stormOnce(p plan, port int, honour bool) *stormResult {
	r := &stormResult{mode: "honours goaway"}
	if !honour {
		r.mode = "ignores goaway (0-500 ms)"
	}
	fail := func(format string, a ...any) { r.errs = append(r.errs, fmt.Sprintf(format, a...)) }
	if err := flushRedis(); err != nil {
		fail("%v", err)
		return r
	}
	nodeB, err := startServer("notify-redis", "", port)
	if err != nil {
		fail("node B: %v", err)
		return r
	}
	defer nodeB.stop()
	nodeA, err := startServer("notify-redis", "A", port+1)
	if err != nil {
		fail("node A: %v", err)
		return r
	}
	defer nodeA.stop()
	urlA := "ws://127.0.0.1:" + strconv.Itoa(port+1) + "/ws"
	urlB := "ws://127.0.0.1:" + strconv.Itoa(port) + "/ws"

	clients := make([]*stormClient, p.n)
	for i := range clients {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "u" + strconv.Itoa(i), "exp": time.Now().Add(time.Hour).Unix()}).SignedString(payload.Secret)
		if err != nil {
			log.Fatal(err)
		}
		clients[i] = &stormClient{token: tok}
	}
	log.Printf("storm (%s): %d sessions on node A", r.mode, p.n)
	var onA sync.WaitGroup  // until each session's life on A has ended
	var back sync.WaitGroup // until each session is welcomed on B
	var backCount atomic.Int64
	var stop atomic.Bool
	var errMu sync.Mutex
	var wg sync.WaitGroup            // every client goroutine
	dials := make(chan struct{}, 64) // sessions dialing node A and not yet welcomed
	for _, c := range clients {
		onA.Add(1)
		back.Add(1)
		wg.Go(func() {
			dials <- struct{}{}
			var once sync.Once
			free := func() { once.Do(func() { <-dials }) }
			_, _, err := c.session(urlA, false, free)
			free()
			onA.Done()
			if err != nil {
				back.Done()
				errMu.Lock()
				fail("dial node A: %v", err)
				errMu.Unlock()
				return
			}
			// The session on A has ended (1001 after the goaway): reconnect to B.
			c.mu.Lock()
			window := c.window
			c.mu.Unlock()
			delay := time.Duration(rand.Int64N(int64(500 * time.Millisecond)))
			if honour && window > 0 {
				delay = time.Duration(rand.Int64N(int64(window)))
			}
			time.Sleep(delay)
			var welcomedB sync.Once
			for attempt := 0; !stop.Load(); attempt++ {
				_, got, _ := c.session(urlB, true, func() {
					welcomedB.Do(func() { backCount.Add(1); back.Done() })
				})
				if stop.Load() {
					break
				}
				if !got {
					c.mu.Lock()
					c.retries++
					c.mu.Unlock()
				}
				// full jitter, as the reference client: [0, min(30 s, 0.5 s * 2^attempt))
				time.Sleep(time.Duration(rand.Int64N(int64(min(30*time.Second, (500*time.Millisecond)<<min(attempt, 6))))))
			}
			welcomedB.Do(back.Done)
		})
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := nodeA.stats()
		if err == nil && st.Conns == p.n {
			break
		}
		errMu.Lock()
		broken := len(r.errs) > 0
		errMu.Unlock()
		if time.Now().After(deadline) || broken {
			fail("node A has %d sessions, want %d", st.Conns, p.n)
			stop.Store(true)
			nodeA.stop()
			nodeB.stop()
			wg.Wait()
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The sender on node B, from a second before the shutdown for as long as the reconnects
	// take at most (the window, then retries), by its time limit.
	secs := 10
	if honour {
		secs = 20
	}
	sendDone := make(chan sendResult, 1)
	go func() {
		var sr sendResult
		b, err := nodeB.post(fmt.Sprintf("/bench/send?kind=user&count=%d&size=%d&users=%d&rate=%d&senders=4&limit=%d",
			*stormRate*secs, p.size, p.n, *stormRate, secs))
		if err == nil {
			err = json.Unmarshal(b, &sr)
		}
		if err != nil {
			log.Printf("storm: send: %v", err)
		}
		sendDone <- sr
	}()
	time.Sleep(time.Second)
	rs0 := readRedisStats()
	stB0, _ := nodeB.stats()
	t0 := time.Now()
	sendStart := t0.Add(-time.Second)
	log.Printf("storm (%s): node A shuts down", r.mode)
	if _, err := nodeA.post("/bench/shutdown"); err != nil {
		fail("shutdown node A: %v", err)
	}
	onA.Wait()
	allBack := make(chan struct{})
	go func() { back.Wait(); close(allBack) }()
	select {
	case <-allBack:
	case <-time.After(60 * time.Second):
		fail("%d of %d sessions back on node B after 60s", backCount.Load(), p.n)
	}
	r.allBack = time.Since(t0)
	rs1 := readRedisStats()
	stB1, _ := nodeB.stats()
	if rs0.ok && rs1.ok {
		r.redisCmds = rs1.commands - rs0.commands
	}
	if stB0.RedisTrips != nil && stB1.RedisTrips != nil {
		r.tripsB = *stB1.RedisTrips - *stB0.RedisTrips
	}
	r.sendsInWindow = float64(*stormRate) * r.allBack.Seconds()
	var sr sendResult
	select {
	case sr = <-sendDone:
	case <-time.After(time.Until(sendStart.Add(time.Duration(secs+5) * time.Second))):
		fail("the sender did not end")
	}
	r.sent = sr.Sent
	// Every session has now read (or will shortly) up to its stream's last offset: user i got
	// the sends i, i+n, i+2n, ...
	settle := time.Now().Add(20 * time.Second)
	for {
		missing := 0
		for i, c := range clients {
			want := uint64(r.sent / p.n)
			if i < r.sent%p.n {
				want++
			}
			c.mu.Lock()
			if c.last < want {
				missing += int(want - c.last)
			}
			c.mu.Unlock()
		}
		if missing == 0 || time.Now().After(settle) {
			r.lost = missing
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop.Store(true)
	nodeB.stop()
	nodeA.stop()
	wg.Wait()
	errMu.Lock()
	defer errMu.Unlock()
	var times []time.Time
	for _, c := range clients {
		r.lost += c.lost
		r.dups += c.dups
		r.notRecovered += c.notRecovered
		r.retries += c.retries
		r.reconnects += len(c.welcomes)
		if len(c.welcomes) > 0 {
			times = append(times, c.welcomes[0])
		}
		if honour && c.window > r.window {
			r.window = c.window
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	for i, j := 0, 0; i < len(times); i++ {
		for times[i].Sub(times[j]) >= time.Second {
			j++
		}
		r.peak = max(r.peak, i-j+1)
	}
	if r.lost > 0 {
		fail("%d events lost", r.lost)
	}
	return r
}
