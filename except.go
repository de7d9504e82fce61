package notify

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gonotify/notify/internal/wire"
)

// Leaving out the session that acted (PROTOCOL.md, "Leaving out the acting session").
//
// A page's requests carry its session's ID in the SessionHeader; the application reads it with
// SessionFrom and sends with Event.Except set to it. The except travels inside the payload, as
// its first member ({"except":"<id>",...}), so that every broker carries it unchanged and each
// hub takes it out before its sessions see the event. A payload without one starts with
// {"type": and costs deliver one comparison of its first bytes.
//
// The ID is "<session>" or "<session>.<tab>": a browser's tabs share one session (the client's
// SharedConnection), and a tab is named by the client. The session that the ID names gets,
// instead of the event:
//   - without a tab, a "skip" frame: the event's position and ID, no content, so that its
//     offsets stay gap-free and the client's dedup remembers the ID (nothing for an event
//     without a position: a broadcast, an ephemeral event);
//   - with a tab, the event with "except":"<tab>": the client delivers it to its other tabs.
//
// Every other session gets the event without the except. The history keeps the payload as it
// was sent: a replay is filtered the same way (exceptHistory).

// SessionHeader is the request header in which the browser client's connection.fetch sends
// the ID of the page's session (connection.sessionId); [SessionFrom] reads it. A backend on
// another origin than the page must allow it in its CORS preflight answer
// (Access-Control-Allow-Headers: Notify-Session).
const SessionHeader = "Notify-Session"

// maxSessionPart bounds each part of an except: the session's ID and the tab's.
const maxSessionPart = 64

// SessionFrom returns the session ID the request carries in its [SessionHeader], for
// [Event].Except; "" when there is none, or when the value is not one a client could have
// (more than 129 bytes, characters outside [0-9A-Za-z] in the session part or outside
// [0-9A-Za-z_-] in the tab part). The value is the client's word: use it only to leave a
// session out, never to grant anything. Leaving out a session that does not exist, or one of
// another user, changes nothing for anybody.
func SessionFrom(r *http.Request) string {
	v := r.Header.Get(SessionHeader)
	if !validExcept(v) {
		return ""
	}
	return v
}

// validExcept reports whether v is "<session>" or "<session>.<tab>" as SessionFrom accepts it.
func validExcept(v string) bool {
	session, tab, dotted := cutTab(v)
	if session == "" || len(session) > maxSessionPart || (dotted && (tab == "" || len(tab) > maxSessionPart)) {
		return false
	}
	for i := 0; i < len(session); i++ {
		if !alnum(session[i]) {
			return false
		}
	}
	for i := 0; i < len(tab); i++ {
		if c := tab[i]; !alnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func cutTab(v string) (session, tab string, dotted bool) {
	if i := strings.IndexByte(v, '.'); i >= 0 {
		return v[:i], v[i+1:], true
	}
	return v, "", false
}

func alnum(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// sessionIDs encodes the random part of session IDs.
var sessionIDs = base32.HexEncoding.WithPadding(base32.NoPadding)

// newSessionID returns a session's ID: unique (newID's) and unguessable (60 random bits), so
// that an except, which may name a session of any user subscribed to a topic, names only one
// whose ID its client was told.
func newSessionID() string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	b := make([]byte, 0, 32)
	b = appendID(b)
	return string(append(b, sessionIDs.EncodeToString(r[:])[:12]...))
}

// exceptHead starts the payload of an event sent with an except.
const exceptHead = `{"except":"`

// hasExcept reports whether a payload was sent with an except.
func hasExcept(payload []byte) bool {
	return len(payload) > len(exceptHead) && string(payload[:len(exceptHead)]) == exceptHead
}

// appendExcept appends the start of a payload sent with an except; the payload's first member
// follows.
func appendExcept(b []byte, except string) []byte {
	b = append(b, exceptHead...)
	b = append(b, except...) // validExcept: nothing to escape
	return append(b, `",`...)
}

// excepted is a message sent with an except, as a hub delivers it: the message without the
// except, and who is left out.
type excepted struct {
	session, tab string
	m            Message // Payload without the except
	frame        []byte  // what every other session gets
}

// splitExcept takes the except out of a message for which hasExcept holds; false for a
// malformed one.
func splitExcept(m Message) (*excepted, bool) {
	rest := m.Payload[len(exceptHead):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || end+1 >= len(rest) || rest[end+1] != ',' || !validExcept(string(rest[:end])) {
		return nil, false
	}
	e := &excepted{}
	e.session, e.tab, _ = cutTab(string(rest[:end]))
	clean := make([]byte, 0, len(rest)-end-1)
	clean = append(append(clean, '{'), rest[end+2:]...)
	e.m = Message{Stream: m.Stream, Offset: m.Offset, Epoch: m.Epoch, Payload: clean}
	e.frame = e.m.frameOf()
	return e, true
}

// frameFor returns what session s gets of the message: the event, the event naming the tab
// left out, or the skip frame; nil for nothing.
func (e *excepted) frameFor(s *session) []byte {
	if s.id != e.session {
		return e.frame
	}
	if e.tab != "" {
		p := appendExcept(make([]byte, 0, len(e.m.Payload)+len(e.tab)+len(exceptHead)+2), e.tab)
		return wire.WithPosition(append(p, e.m.Payload[1:]...), e.m.Offset, e.m.Epoch)
	}
	if e.m.Offset == 0 {
		return nil
	}
	return skipFrame(e.m)
}

// skipFrame returns the frame that takes an event's place for the session left out: its
// position first, as an event's (so that the event-stream transport gives it its id), then
// op "skip" and the event's ID.
func skipFrame(m Message) []byte {
	var ev struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(m.Payload, &ev) // the hub's own encoding
	b := make([]byte, 0, 32+len(ev.ID)+len(m.Stream))
	b = append(b, `{"op":"skip","id":`...)
	b = wire.AppendString(b, ev.ID)
	if topic, ok := wire.TopicOf(m.Stream); ok {
		b = append(b, `,"topic":`...)
		b = wire.AppendString(b, topic)
	}
	return wire.WithPosition(append(b, '}'), m.Offset, m.Epoch)
}

// exceptHistory filters a stream's history for session s as deliver filters live messages:
// the messages sent with an except get the frame s gets. msgs is the broker's fresh slice.
func exceptHistory(s *session, msgs []Message) []Message {
	for i, m := range msgs {
		if !hasExcept(m.Payload) {
			continue
		}
		if e, ok := splitExcept(m); ok {
			e.m.Frame = e.frameFor(s)
			msgs[i] = e.m
		}
	}
	return msgs
}
