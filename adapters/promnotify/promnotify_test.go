package promnotify_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/nethttp"
	"github.com/gonotify/notify/adapters/promnotify"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve starts a hub mounted at /notify on a test server; both stop at the end of the test.
func serve(t *testing.T) (*notify.Hub, string) {
	t.Helper()
	hub, err := notify.New(notify.Config{Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hub.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	mux := http.NewServeMux()
	nethttp.Mount(mux, "/notify", hub)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return hub, "ws" + strings.TrimPrefix(srv.URL, "http") + "/notify/ws"
}

// dial opens a session of user and reads its welcome frame.
func dial(t *testing.T, hub *notify.Hub, url, user string) *websocket.Conn {
	t.Helper()
	tok, err := hub.IssueToken(user, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d := websocket.Dialer{Subprotocols: []string{notify.Subprotocol}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial(url, http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { ws.Close() })
	if got := ws.Subprotocol(); got != notify.Subprotocol {
		t.Fatalf("subprotocol %q, want %q", got, notify.Subprotocol)
	}
	if m := read(t, ws); m["op"] != "welcome" {
		t.Fatalf("first frame %v, want a welcome", m)
	}
	return ws
}

func read(t *testing.T, ws *websocket.Conn) map[string]any {
	t.Helper()
	var m map[string]any
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := ws.ReadJSON(&m); err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

// gather registers a collector of hub on a fresh pedantic registry (which also checks that
// every collected metric was described) and gathers it.
func gather(t *testing.T, hub *notify.Hub) (*prometheus.Registry, map[string]*dto.MetricFamily) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(promnotify.NewCollector(hub))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	byName := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	return reg, byName
}

// value is the value of the counter or gauge name with the given label pair ("" for none).
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name, label, val string) float64 {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("no %s", name)
	}
	for _, m := range mf.GetMetric() {
		if label != "" && !hasLabel(m, label, val) {
			continue
		}
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no %s{%s=%q}", name, label, val)
	return 0
}

func hasLabel(m *dto.Metric, name, val string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == val {
			return true
		}
	}
	return false
}

func TestCollector(t *testing.T) {
	hub, url := serve(t)
	ws := dial(t, hub, url, "alice")

	if _, err := hub.Send(context.Background(), "alice", notify.Event{Type: "order.shipped", Data: 42}); err != nil {
		t.Fatal(err)
	}
	if m := read(t, ws); m["type"] != "order.shipped" {
		t.Fatalf("got %v, want the event", m)
	}

	// An upgrade without a token is refused before the handshake.
	_, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial without token: %v, %v; want 401", err, resp)
	}
	resp.Body.Close()
	// melody counts a frame once its write returned, which may be after the client read it.
	deadline := time.Now().Add(5 * time.Second)
	for hub.Stats().FramesWritten < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}

	reg, mfs := gather(t, hub)
	const want = `
# HELP notify_connects_total Sessions opened, by transport (websocket, sse).
# TYPE notify_connects_total counter
notify_connects_total{transport="sse"} 0
notify_connects_total{transport="websocket"} 1
# HELP notify_sends_total Calls of Send (kind user), Publish (topic) and Broadcast (broadcast), failed ones included.
# TYPE notify_sends_total counter
notify_sends_total{kind="broadcast"} 0
notify_sends_total{kind="topic"} 0
notify_sends_total{kind="user"} 1
# HELP notify_sessions Open sessions.
# TYPE notify_sessions gauge
notify_sessions 1
# HELP notify_transport_sessions Open sessions by transport (websocket, sse).
# TYPE notify_transport_sessions gauge
notify_transport_sessions{transport="sse"} 0
notify_transport_sessions{transport="websocket"} 1
# HELP notify_topics Topics with at least one subscriber on this hub.
# TYPE notify_topics gauge
notify_topics 0
# HELP notify_upgrades_refused_total Upgrade requests answered without an upgrade, by reason.
# TYPE notify_upgrades_refused_total counter
notify_upgrades_refused_total{reason="bad_request"} 0
notify_upgrades_refused_total{reason="hub_sessions"} 0
notify_upgrades_refused_total{reason="no_token"} 1
notify_upgrades_refused_total{reason="origin"} 0
notify_upgrades_refused_total{reason="shutting_down"} 0
notify_upgrades_refused_total{reason="signed_out"} 0
notify_upgrades_refused_total{reason="token_expired"} 0
notify_upgrades_refused_total{reason="token_invalid"} 0
notify_upgrades_refused_total{reason="token_too_large"} 0
notify_upgrades_refused_total{reason="user_sessions"} 0
# HELP notify_users Users with at least one open session.
# TYPE notify_users gauge
notify_users 1
# HELP notify_recoveries_total Recoveries asked for by reconnecting clients, by whether they were complete.
# TYPE notify_recoveries_total counter
notify_recoveries_total{recovered="false"} 0
notify_recoveries_total{recovered="true"} 0
# HELP notify_slow_consumer_closes_total Sessions closed as slow consumers.
# TYPE notify_slow_consumer_closes_total counter
notify_slow_consumer_closes_total 0
# HELP notify_broker_errors_total Failed broker calls (publish, subscribe, unsubscribe, history, presence).
# TYPE notify_broker_errors_total counter
notify_broker_errors_total 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"notify_connects_total", "notify_sends_total", "notify_sessions", "notify_transport_sessions", "notify_topics",
		"notify_upgrades_refused_total", "notify_users", "notify_recoveries_total",
		"notify_slow_consumer_closes_total", "notify_broker_errors_total",
	); err != nil {
		t.Error(err)
	}

	// The welcome and the event: at least one delivery and two frames (the hub may join frames).
	if v := value(t, mfs, "notify_deliveries_total", "", ""); v < 1 {
		t.Errorf("notify_deliveries_total %v, want >= 1", v)
	}
	if v := value(t, mfs, "notify_frames_written_total", "", ""); v < 2 {
		t.Errorf("notify_frames_written_total %v, want >= 2", v)
	}
	if v := value(t, mfs, "notify_written_bytes_total", "", ""); v < 20 {
		t.Errorf("notify_written_bytes_total %v, want >= 20", v)
	}
	// Every known close code has a series from the start, at zero.
	if v := value(t, mfs, "notify_disconnects_total", "code", "1000"); v != 0 {
		t.Errorf("notify_disconnects_total{code=1000} %v before any disconnect, want 0", v)
	}
	if n := len(mfs["notify_disconnects_total"].GetMetric()); n != 26 {
		t.Errorf("%d notify_disconnects_total series, want 26 (12 codes and other, by 2 transports)", n)
	}

	h := mfs["notify_send_duration_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 1 || h.GetSampleSum() <= 0 || h.GetSampleSum() > 5 {
		t.Errorf("notify_send_duration_seconds count %d sum %v, want 1 and a duration", h.GetSampleCount(), h.GetSampleSum())
	}
	b := h.GetBucket()
	if len(b) == 0 || b[len(b)-1].GetUpperBound() != 1 || b[0].GetUpperBound() != 10e-6 {
		t.Fatalf("buckets %v, want 10µs to 1s", b)
	}
	for i := range b {
		if i > 0 && (b[i].GetUpperBound() <= b[i-1].GetUpperBound() || b[i].GetCumulativeCount() < b[i-1].GetCumulativeCount()) {
			t.Errorf("buckets not ascending and cumulative: %v", b)
		}
	}

	// 22 series without a label or with a fixed set of values (2 transports of sessions and
	// of connects, 3 kinds of sends, 2 of recoveries and of transitions), the histogram, 10
	// refusal reasons and 13 close codes (12 and other) by 2 transports.
	if n := testutil.CollectAndCount(promnotify.NewCollector(hub)); n != 59 {
		t.Errorf("%d metrics collected, want 59", n)
	}
	problems, err := testutil.CollectAndLint(promnotify.NewCollector(hub))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// Disconnects are counted by close code and transport; codes the protocol does not define
// under "other". An event stream that the client drops ends as a broken connection, 1006.
func TestDisconnects(t *testing.T) {
	hub, url := serve(t)
	for _, code := range []int{websocket.CloseNormalClosure, 4999} {
		ws := dial(t, hub, url, "bob")
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				break
			}
		}
	}
	stream(t, hub, "http"+strings.TrimSuffix(strings.TrimPrefix(url, "ws"), "/ws")+"/sse", "carol").Close()
	deadline := time.Now().Add(5 * time.Second)
	for hub.Stats().Sessions > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	reg, _ := gather(t, hub)
	var want strings.Builder
	want.WriteString(`
# HELP notify_disconnects_total Sessions ended, by close code (1006: the connection broke; other: a code the protocol does not define) and transport (websocket, sse).
# TYPE notify_disconnects_total counter
`)
	for _, code := range []string{"1000", "1001", "1005", "1006", "1009", "1011", "1013", "4000", "4001", "4002", "4003", "4029", "other"} {
		sse, ws := 0, 0
		switch code {
		case "1000", "other":
			ws = 1
		case "1006":
			sse = 1
		}
		fmt.Fprintf(&want, "notify_disconnects_total{code=%q,transport=\"sse\"} %d\n", code, sse)
		fmt.Fprintf(&want, "notify_disconnects_total{code=%q,transport=\"websocket\"} %d\n", code, ws)
	}
	want.WriteString(`# HELP notify_sessions Open sessions.
# TYPE notify_sessions gauge
notify_sessions 0
# HELP notify_connects_total Sessions opened, by transport (websocket, sse).
# TYPE notify_connects_total counter
notify_connects_total{transport="sse"} 1
notify_connects_total{transport="websocket"} 2
`)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String()),
		"notify_disconnects_total", "notify_sessions", "notify_connects_total"); err != nil {
		t.Error(err)
	}
}

// stream opens an event stream of user (GET <prefix>/sse) and reads its welcome.
func stream(t *testing.T, hub *notify.Hub, url, user string) io.Closer {
	t.Helper()
	tok, err := hub.IssueToken(user, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), `"op":"welcome"`) {
			return resp.Body
		}
	}
	t.Fatalf("stream ended before its welcome: %v", sc.Err())
	return nil
}

// A hub that never served anything still exports every unlabelled series, at zero.
func TestIdle(t *testing.T) {
	hub, _ := serve(t)
	_, mfs := gather(t, hub)
	for _, name := range []string{"notify_sessions", "notify_connects_total", "notify_deliveries_total",
		"notify_rate_limited_total", "notify_abuse_closes_total"} {
		if v := value(t, mfs, name, "", ""); v != 0 {
			t.Errorf("%s = %v, want 0", name, v)
		}
	}
	if h := mfs["notify_send_duration_seconds"].GetMetric()[0].GetHistogram(); h.GetSampleCount() != 0 || len(h.GetBucket()) != 15 {
		t.Errorf("idle histogram: %v", h)
	}
}

type reconnects uint64

func (r reconnects) Reconnects() uint64 { return uint64(r) }

// The broker's reconnections come from the broker itself, given explicitly.
func TestBrokerCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(promnotify.NewBrokerCollector(reconnects(3)))
	const want = `
# HELP notify_broker_reconnects_total Reconnections of the broker to its backend.
# TYPE notify_broker_reconnects_total counter
notify_broker_reconnects_total 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
