package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gonotify/notify/internal/wire"
)

// TestTeardown: whatever path a session takes, teardown gives back what it took, each once and
// in the reverse order of the setup, and a session turned away before its welcome gives back
// the user stream's subscription before the client sees 1013. It runs on a host and a
// transport that record what the session asks of them.
func TestTeardown(t *testing.T) {
	u, news := wire.UserStream("alice"), wire.TopicStream("news")
	unavailable := errors.New("unavailable")
	for _, tc := range []struct {
		name       string
		first      bool  // the user stream is subscribed before presence is joined
		joinErr    error // presence cannot be reached
		upgraded   bool  // the transport connects (else refused before: 401, shutdown, upgrade failure)
		historyErr error // the broker cannot read the user stream
		want       []string
	}{
		{name: "refused before the upgrade", first: true, want: []string{
			"subscribe " + u, "join presence",
			"unsubscribe " + u, "leave presence", "leave admission"}},
		{name: "refused before the upgrade, presence unavailable", first: true, joinErr: unavailable, want: []string{
			"subscribe " + u, "join presence",
			"unsubscribe " + u, "leave admission"}},
		{name: "presence unavailable", first: true, joinErr: unavailable, upgraded: true, want: []string{
			"subscribe " + u, "join presence",
			"unsubscribe " + u, "close 1013",
			"leave admission"}},
		{name: "broker unavailable", historyErr: unavailable, upgraded: true, want: []string{
			"join presence", "index add", "subscribe " + u, "history " + u,
			"unsubscribe " + u, "close 1013",
			"index remove", "leave presence", "leave admission"}},
		{name: "welcomed", first: true, upgraded: true, want: []string{
			"subscribe " + u, "join presence", "index add", "history " + u, "welcome",
			"index subscribe news", "subscribe " + news, "history " + news,
			"close 1000", "index remove", "unsubscribe " + news, "unsubscribe " + u, "leave presence", "leave admission"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newRecordingHost(t)
				h.joinErr, h.historyErr = tc.joinErr, tc.historyErr
				s := newSession(h, Identity{UserID: "alice"}, nil)
				ctx := context.Background()
				if tc.first {
					s.subscribeUserFirst(ctx)
				}
				s.joinPresence(ctx, "node", transportWebSocket)
				if tc.upgraded {
					s.connected(ctx, recordingTransport{h})
				}
				s.teardown()
				s.teardown() // gives back nothing more
				if got := h.record(); !slices.Equal(got, tc.want) {
					t.Fatalf("\n got %q\nwant %q", got, tc.want)
				}
			})
		})
	}
}

// recordingHost is a sessionHost that records what a session asks of it.
type recordingHost struct {
	cfg                 Config
	stats               counters
	joinErr, historyErr error

	mu     sync.Mutex
	log    []string
	topics []string
}

func newRecordingHost(t testing.TB) *recordingHost {
	t.Helper()
	h := &recordingHost{cfg: Config{Secret: make([]byte, 32), Logger: slog.New(slog.DiscardHandler),
		Subscriptions: func(context.Context, Identity) ([]string, error) { return []string{"news"}, nil }}}
	if err := h.cfg.normalize(); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *recordingHost) add(format string, args ...any) {
	h.mu.Lock()
	h.log = append(h.log, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

func (h *recordingHost) record() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.log)
}

func (h *recordingHost) settings() *Config  { return &h.cfg }
func (h *recordingHost) metrics() *counters { return &h.stats }
func (h *recordingHost) clock() time.Time   { return time.Now() }
func (h *recordingHost) closing() bool      { return false }
func (h *recordingHost) queue(*outbox)      {}
func (h *recordingHost) handedOut(int64)    {}
func (h *recordingHost) indexAdd(*session)  { h.add("index add") }
func (h *recordingHost) indexRemove(*session) []string {
	h.add("index remove")
	return h.topics
}
func (h *recordingHost) indexSubscribe(_ *session, topic string, _ bool) bool {
	h.add("index subscribe %s", topic)
	h.topics = append(h.topics, topic)
	return true
}
func (h *recordingHost) indexUnsubscribe(*session, string) bool         { return false }
func (h *recordingHost) indexSubscription(*session, string) (bool, int) { return false, 0 }
func (h *recordingHost) indexClientTopics(*session) []string            { return nil }
func (h *recordingHost) subscribe(_ context.Context, stream string) error {
	h.add("subscribe %s", stream)
	return nil
}
func (h *recordingHost) history(_ context.Context, stream string, _ *Position) (Position, []Message, error) {
	h.add("history %s", stream)
	if wire.IsUserStream(stream) && h.historyErr != nil {
		return Position{}, nil, h.historyErr
	}
	return Position{Epoch: "e"}, nil, nil
}
func (h *recordingHost) unsubscribe(_ context.Context, stream string) {
	h.add("unsubscribe %s", stream)
}
func (h *recordingHost) joinPresence(context.Context, SessionInfo) (int, time.Time, error) {
	h.add("join presence")
	return 1, time.Time{}, h.joinErr
}
func (h *recordingHost) leavePresence(context.Context, SessionInfo) (int, bool, error) {
	h.add("leave presence")
	return 0, true, nil
}
func (h *recordingHost) verify(string) (Identity, error)              { return Identity{}, errors.New("unused") }
func (h *recordingHost) checkRefused(context.Context, Identity) error { return nil }
func (h *recordingHost) leaveAdmission(string)                        { h.add("leave admission") }
func (h *recordingHost) requests() *requests                          { return nil }

// recordingTransport is a transport that records its welcome and its close in its host's log.
type recordingTransport struct{ h *recordingHost }

func (t recordingTransport) Write([]byte) error { return nil }
func (t recordingTransport) CloseWith(code CloseCode) error {
	t.h.add("close %d", code)
	return nil
}
func (t recordingTransport) welcome([]byte, time.Duration) error {
	t.h.add("welcome")
	return nil
}
func (t recordingTransport) cut()              {}
func (recordingTransport) kind() transportKind { return transportWebSocket }
