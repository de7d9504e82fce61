package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/internal/wstest"
)

// TestNoSilentLossInOutage: Redis is killed while node A sends to two users and a topic every
// 20 ms, and restarted. On node B, during the outage, a session reconnects with its position,
// another connects for the first time, and a third (connected before) subscribes to the
// topic. None of them is welcomed or subscribed while Redis is down (1013, "unavailable");
// once each is, it gets every event Redis accepted from its position on, with consecutive
// offsets, or is told recovered:false.
func TestNoSilentLossInOutage(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	p := prefix(t)
	a, b := newNode(t, r.url(), p, nil), newNode(t, r.url(), p, nil)
	carol, w := b.dial(t, "carol", nil)
	carolPos := position(t, w)
	carol.WS.Close()
	erin, _ := b.dial(t, "erin", nil)

	// The sender counts what Redis accepted after the kill, per stream.
	var mu sync.Mutex
	accepted := map[string]int{}
	killed := false
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			for _, s := range []string{"carol", "dave", "news"} {
				mu.Lock() // the kill comes between two sends, never during one
				var err error
				if s == "news" {
					_, err = a.hub.Publish(context.Background(), s, notify.Event{Type: "ev", Data: i})
				} else {
					_, err = a.hub.Send(context.Background(), s, notify.Event{Type: "ev", Data: i})
				}
				if err == nil && killed {
					accepted[s]++
				}
				mu.Unlock()
			}
		}
	}()

	mu.Lock()
	r.kill()
	killed = true
	mu.Unlock()
	carolURL := b.url + "?" + url.Values{"epoch": {carolPos.Epoch}, "offset": {fmt.Sprint(carolPos.Offset)}}.Encode()
	for _, u := range []string{carolURL, b.url} {
		if _, err := tryWelcome(t, b, u, "carol"); !websocket.IsCloseError(err, 1013) {
			t.Fatalf("a session opened with Redis down: %v, want close 1013", err)
		}
	}
	erin.Send(map[string]any{"op": "subscribe", "topic": "news"})
	if m := erin.NextNonPing(); m["op"] != "error" || m["code"] != "unavailable" {
		t.Fatalf("subscribe with Redis down: %v, want error unavailable", m)
	}

	bin, _ := exec.LookPath("redis-server")
	r.start(bin)
	// Redis lost the history: carol's recovery is impossible, and she is told so.
	carolBack := welcomed(t, b, carolURL, "carol")
	if carolBack.welcome["recovered"] != false {
		t.Fatalf("carol's welcome %v, want recovered false", carolBack.welcome)
	}
	dave := welcomed(t, b, b.url, "dave")
	var erinFrom uint64
	wstest.WaitFor(t, "erin's subscribe served", func() bool {
		erin.Send(map[string]any{"op": "subscribe", "topic": "news"})
		m := erin.NextNonPing()
		for m["op"] != "subscribed" && m["op"] != "error" {
			m = erin.NextNonPing() // events of her own stream
		}
		if m["op"] == "subscribed" {
			erinFrom = uint64(num(m["offset"]))
		}
		return m["op"] == "subscribed"
	})
	// Enough sends after everyone is back, then the sender stops.
	mu.Lock()
	target := accepted["news"] + 25
	mu.Unlock()
	wstest.WaitFor(t, "sends after the outage", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return accepted["news"] >= target
	})
	close(stop)
	<-done

	for _, s := range []struct {
		name string
		c    *wstest.Client
		from uint64
		want int
		only string // the topic, for erin's reads
	}{
		{"carol", carolBack.c, carolBack.from, accepted["carol"], ""},
		{"dave", dave.c, dave.from, accepted["dave"], ""},
		{"erin", erin, erinFrom, accepted["news"], "news"},
	} {
		next := s.from + 1
		for next <= uint64(s.want) {
			m := s.c.NextNonPing()
			if s.only != "" && m["topic"] != s.only {
				continue
			}
			if got := uint64(num(m["offset"])); got != next {
				t.Fatalf("%s: event %v, want offset %d (every accepted event from %d on, in order)", s.name, m, next, s.from)
			}
			next++
		}
	}
}

type session struct {
	c       *wstest.Client
	welcome map[string]any
	from    uint64 // the welcome's offset
}

// tryWelcome dials u as user and returns the welcome, or the error that ended the connection
// before it.
func tryWelcome(t *testing.T, n *node, u, user string) (*session, error) {
	t.Helper()
	tok, err := n.hub.IssueToken(user, time.Minute, ">")
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := wstest.Dial(t, u, http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		return nil, err
	}
	m, err := c.Read(10 * time.Second)
	if err != nil {
		return nil, err
	}
	if m["op"] != "welcome" {
		t.Fatalf("first frame %v, want welcome", m)
	}
	return &session{c: c, welcome: m, from: uint64(num(m["offset"]))}, nil
}

// welcomed dials until the session is welcomed (Redis coming back).
func welcomed(t *testing.T, n *node, u, user string) *session {
	t.Helper()
	var s *session
	wstest.WaitFor(t, user+" welcomed", func() bool {
		var err error
		s, err = tryWelcome(t, n, u, user)
		if err != nil && !websocket.IsCloseError(err, 1013) && !errors.Is(err, wstest.ErrTimeout) {
			t.Fatal(err)
		}
		return err == nil
	})
	return s
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

// History reads from Redis only what follows the position it is given, and nothing without one.
func TestHistoryAfter(t *testing.T) {
	t.Parallel()
	n := newNode(t, redisURL(t), prefix(t), nil)
	for i := 1; i <= 8; i++ {
		if _, err := n.hub.Send(context.Background(), "alice", notify.Event{Type: "ev", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	pos, msgs, err := n.broker.History(ctx, "u:alice", nil)
	if err != nil || pos.Offset != 8 || len(msgs) != 0 {
		t.Fatalf("without a position: %+v, %d messages, %v; want offset 8 and none", pos, len(msgs), err)
	}
	for _, tc := range []struct {
		after notify.Position
		want  string
	}{
		{notify.Position{Epoch: pos.Epoch}, "[1 2 3 4 5 6 7 8]"},
		{notify.Position{Epoch: pos.Epoch, Offset: 5}, "[6 7 8]"},
		{notify.Position{Epoch: pos.Epoch, Offset: 8}, "[]"},
		{notify.Position{Epoch: "old", Offset: 2}, "[]"},
	} {
		_, msgs, err := n.broker.History(ctx, "u:alice", &tc.after)
		if err != nil {
			t.Fatal(err)
		}
		var offs []uint64
		for _, m := range msgs {
			offs = append(offs, m.Offset)
			if want := fmt.Sprintf(`{"offset":%d,"epoch":%q,`, m.Offset, pos.Epoch); !strings.HasPrefix(string(m.Frame), want) {
				t.Fatalf("frame %s, want it to start with %s", m.Frame, want)
			}
		}
		if fmt.Sprint(offs) != tc.want {
			t.Errorf("after %+v: offsets %v, want %s", tc.after, offs, tc.want)
		}
	}
}

// A malformed entry in a stream's history is skipped (and logged), not an error and not a
// panic: the stream stays usable, and a recovery over it is reported as incomplete.
func TestMalformedHistoryEntry(t *testing.T) {
	t.Parallel()
	u := redisURL(t)
	p := prefix(t)
	n := newNode(t, u, p, nil)
	for i := 1; i <= 3; i++ {
		if _, err := n.hub.Send(context.Background(), "alice", notify.Event{Type: "ev", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	o, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(o)
	defer rc.Close()
	// The second of three entries becomes garbage.
	if err := rc.LSet(t.Context(), p+":{u:alice}:hist", 1, "garbage").Err(); err != nil {
		t.Fatal(err)
	}
	pos, _, err := n.broker.History(t.Context(), "u:alice", &notify.Position{Epoch: "x"})
	if err != nil {
		t.Fatal(err)
	}
	_, msgs, err := n.broker.History(t.Context(), "u:alice", &notify.Position{Epoch: pos.Epoch})
	if err != nil || len(msgs) != 2 || msgs[0].Offset != 1 || msgs[1].Offset != 3 {
		t.Fatalf("history %v, %v; want offsets 1 and 3", msgs, err)
	}
	c, w := n.dial(t, "alice", &notify.Position{Epoch: pos.Epoch})
	if w["recovered"] != false {
		t.Fatalf("welcome %v, want recovered false over the gap", w)
	}
	if _, err := n.hub.Send(context.Background(), "alice", notify.Event{Type: "after", Data: 4}); err != nil {
		t.Fatal(err)
	}
	expect(t, c, "after", 4)
}

// TestClientKillPubSub: Redis drops the node's subscriber connection (CLIENT KILL) while
// another node goes on sending: the node reconnects, catches up from the history, and its
// session misses nothing, in order.
func TestClientKillPubSub(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	p := prefix(t)
	a, b := newNode(t, r.url(), p, nil), newNode(t, r.url(), p, nil)
	alice, w := b.dial(t, "alice", nil)
	next := uint64(num(w["offset"])) + 1
	rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port)})
	defer rc.Close()
	for i := range 20 {
		if i == 5 {
			if err := rc.Do(t.Context(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.hub.Send(context.Background(), "alice", notify.Event{Type: "ev", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		m := alice.NextNonPing()
		if m["type"] != "ev" || num(m["data"]) != float64(i) || uint64(num(m["offset"])) != next {
			t.Fatalf("got %v, want event %d at offset %d", m, i, next)
		}
		next++
	}
	wstest.WaitFor(t, "the reconnect counted", func() bool { return b.broker.Stats().Reconnects >= 1 })
}
