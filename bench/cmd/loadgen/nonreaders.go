package main

import (
	"encoding/json"
	"fmt"
	"log"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gonotify/notify/bench/internal/payload"
)

// S9, non-readers: clients that stop reading while large broadcasts go on, and what they do to
// the clients that read until the server cuts them off. It runs on connections of its own
// (S1's are closed first): s9Readers readers and s9Stalled clients that read nothing after the
// welcome, then s9Size-byte broadcasts at s9Rate/s for s9Secs seconds. Figures: the readers'
// latency, and when the server had closed every non-reader as a slow consumer.
const (
	s9Size = 8 << 10
	s9Rate = 100
)

// nonReaders is S9's outcome.
type nonReaders struct {
	d          delivery
	allClosed  time.Duration // from the first broadcast until the server had closed every non-reader (0: not within the scenario)
	firstClose time.Duration // until it closed the first
	closed     uint64        // non-readers the server closed as slow consumers
	// the readers' p99 over the events sent before every non-reader was closed and after
	p99Before, p99After time.Duration
	rssPeak             uint64 // server RSS growth, peak
}

// runNonReaders runs S9 against srv; old are S1's clients, closed first.
func runNonReaders(name string, srv *server, url string, p plan, old []*client) (nr nonReaders, err error) {
	for _, c := range old {
		if c != nil {
			c.ws.Close()
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := srv.stats()
		if err == nil && st.Conns == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nr, fmt.Errorf("S9: the server still has %d connections 20s after S1's were closed", st.Conns)
		}
	}
	total := p.s9Readers + p.s9Stalled
	clients := make([]*client, total)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.ws.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var dialErr error
	next := 0
	for range 32 {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= total {
					return
				}
				tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
					"sub": "s9-" + strconv.Itoa(i), "exp": time.Now().Add(time.Hour).Unix()}).SignedString(payload.Secret)
				c, err := dialTS(url, tok, proto(name), i < p.s9Readers)
				if err != nil {
					mu.Lock()
					dialErr = err
					mu.Unlock()
					continue
				}
				if i >= p.s9Readers {
					c.slow.Store(true) // reads the welcome (or the first frame), then nothing
				}
				clients[i] = c
			}
		})
	}
	wg.Wait()
	if dialErr != nil {
		return nr, fmt.Errorf("S9: dial: %v", dialErr)
	}
	for _, c := range clients {
		select {
		case <-c.ready:
		case <-time.After(10 * time.Second):
			return nr, fmt.Errorf("S9: a connection got no welcome within 10s")
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := srv.stats()
		if err == nil && st.Conns == total {
			break
		}
		if time.Now().After(deadline) {
			return nr, fmt.Errorf("S9: server reports %d connections, want %d", st.Conns, total)
		}
	}
	for _, c := range clients {
		c.take()
	}
	srv.post("/bench/gc")
	st0, err := srv.stats()
	if err != nil {
		return nr, err
	}

	// The server's slow-consumer closes, polled while the broadcasts run.
	start := time.Now()
	stop, polled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(polled)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			st, err := srv.stats()
			if err != nil {
				continue
			}
			at := time.Since(start)
			nr.rssPeak = max(nr.rssPeak, st.RSS-min(st.RSS, st0.RSS))
			nr.closed = st.Slow - st0.Slow
			if nr.closed > 0 && nr.firstClose == 0 {
				nr.firstClose = at
			}
			if p.s9Stalled > 0 && nr.closed >= uint64(p.s9Stalled) && nr.allClosed == 0 {
				nr.allClosed = at
			}
		}
	}()
	ph := newPhase()
	current.Store(ph)
	defer current.Store(nil)
	count := s9Rate * p.s9Secs
	b, err := srv.post(fmt.Sprintf("/bench/send?kind=broadcast&count=%d&rate=%d&size=%d&limit=%d", count, s9Rate, s9Size, p.s9Secs+10))
	var sent int
	if err == nil {
		var sr struct{ Sent int }
		if err = json.Unmarshal(b, &sr); err == nil {
			sent = sr.Sent
		}
	}
	if err != nil {
		close(stop)
		<-polled
		return nr, fmt.Errorf("S9: %v", err)
	}
	ph.expected.Store(int64(sent * p.s9Readers))
	ph.check()
	select {
	case <-ph.done:
		nr.d.ok = true
	case <-time.After(p.wait):
	}
	close(stop)
	<-polled
	nr.d.delivered = ph.got.Load()
	if !nr.d.ok {
		log.Printf("%s: S9: %d of %d deliveries to the readers after %s", name, nr.d.delivered, sent*p.s9Readers, p.wait)
	}
	// The readers' latencies: all, and those of the events sent until every non-reader was
	// closed and after; per second of the scenario, the worst, for the log.
	var lat, before, after []int64
	worst := make([]time.Duration, p.s9Secs+1)
	cut := start.Add(nr.allClosed).UnixNano()
	for _, c := range clients[:p.s9Readers] {
		l, at := c.takeTS()
		lat = append(lat, l...)
		for i, ts := range at {
			if nr.allClosed == 0 || ts < cut {
				before = append(before, l[i])
			} else {
				after = append(after, l[i])
			}
			s := min(len(worst)-1, max(0, int((ts-start.UnixNano())/1e9)))
			worst[s] = max(worst[s], time.Duration(l[i]))
		}
	}
	nr.d.p50, nr.d.p99, nr.d.p999 = quantile(lat, 0.50), quantile(lat, 0.99), quantile(lat, 0.999)
	nr.p99Before, nr.p99After = quantile(before, 0.99), quantile(after, 0.99)
	var w []string
	for _, d := range worst {
		w = append(w, d.Round(100*time.Microsecond).String())
	}
	log.Printf("%s: S9: the readers' worst latency in each second: %s", name, strings.Join(w, " "))
	if end := ph.end.Load(); nr.d.ok {
		nr.d.rate = float64(nr.d.delivered) / (float64(end-start.UnixNano()) / 1e9)
	}
	return nr, nil
}

// quantile returns the f-quantile of lat (sorted in place); 0 for none.
func quantile(lat []int64, f float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	return time.Duration(lat[min(len(lat)-1, int(math.Ceil(f*float64(len(lat))))-1)])
}
