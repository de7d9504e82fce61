// Package wire is notify's wire format (PROTOCOL.md): the names of streams, the control frames
// server and client exchange, the position an event frame carries, and the JSON fast path. The
// hub and the broker adapters share it; it holds no state.
package wire

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Streams: one per user, one per topic, and one for broadcasts.
const (
	Broadcast   = "b"
	userPrefix  = "u:"
	topicPrefix = "t:"
)

// UserStream is the stream of a user's events.
func UserStream(user string) string { return userPrefix + user }

// TopicStream is the stream of a topic's events.
func TopicStream(topic string) string { return topicPrefix + topic }

// UserOf returns the user of a user stream.
func UserOf(stream string) (string, bool) { return strings.CutPrefix(stream, userPrefix) }

// TopicOf returns the topic of a topic stream.
func TopicOf(stream string) (string, bool) { return strings.CutPrefix(stream, topicPrefix) }

// IsUserStream reports whether stream is a user's.
func IsUserStream(stream string) bool { return strings.HasPrefix(stream, userPrefix) }

// Error codes of "error" control frames (and of "unsubscribed" when the server ended it).
const (
	CodeBadRequest    = "bad_request"
	CodeUnknownOp     = "unknown_op"
	CodeInvalidTopic  = "invalid_topic"
	CodeForbidden     = "forbidden"
	CodeTooManyTopics = "too_many_topics"
	CodeInvalidToken  = "invalid_token"
	CodeRateLimited   = "rate_limited"
	CodeUnavailable   = "unavailable"
)

// Codes of "reply" frames that answer a request with an error (besides CodeBadRequest and
// CodeRateLimited, and the application's own codes).
const (
	CodeUnknownRequest  = "unknown_request"
	CodeInternal        = "internal"
	CodeTimeout         = "timeout"
	CodeTooManyRequests = "too_many_requests"
)

// Control is a control frame, server to client.
type Control struct {
	Op      string `json:"op"`
	User    string `json:"user,omitempty"`
	Session string `json:"session,omitempty"`
	Exp     int64  `json:"exp,omitempty"`
	Ping    int64  `json:"ping,omitempty"`
	Topic   string `json:"topic,omitempty"`
	Code    string `json:"code,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Epoch and Offset are a stream's position: the user stream's in welcome, the topic's in
	// subscribed. Recovered answers a recovery request.
	Epoch     string `json:"epoch,omitempty"`
	Offset    uint64 `json:"offset,omitempty"`
	Recovered *bool  `json:"recovered,omitempty"`
	// Reconnect, in goaway, is the window in seconds over which the client spreads its
	// reconnect.
	Reconnect int64 `json:"reconnect,omitempty"`
	// Server, in subscribed, marks a subscription the application made: the client does not
	// renew it itself, and gives its position in the connect URL to recover it.
	Server bool `json:"server,omitempty"`
}

// Frame encodes c as json.Marshal would (TestControlFrame compares them), without reflection:
// a welcome per new session is on the connection path.
func (c Control) Frame() []byte {
	b := make([]byte, 0, 64+len(c.User)+len(c.Session)+len(c.Topic)+len(c.Reason)+len(c.Epoch))
	b = append(b, `{"op":`...)
	b = AppendString(b, c.Op)
	str := func(key, v string) {
		if v != "" {
			b = append(b, key...)
			b = AppendString(b, v)
		}
	}
	num := func(key string, v int64) {
		if v != 0 {
			b = append(b, key...)
			b = strconv.AppendInt(b, v, 10)
		}
	}
	str(`,"user":`, c.User)
	str(`,"session":`, c.Session)
	num(`,"exp":`, c.Exp)
	num(`,"ping":`, c.Ping)
	str(`,"topic":`, c.Topic)
	str(`,"code":`, c.Code)
	str(`,"reason":`, c.Reason)
	str(`,"epoch":`, c.Epoch)
	if c.Offset != 0 {
		b = append(b, `,"offset":`...)
		b = strconv.AppendUint(b, c.Offset, 10)
	}
	if c.Recovered != nil {
		b = append(b, `,"recovered":`...)
		b = strconv.AppendBool(b, *c.Recovered)
	}
	num(`,"reconnect":`, c.Reconnect)
	if c.Server {
		b = append(b, `,"server":true`...)
	}
	return append(b, '}')
}

// Error is the frame of an "error" control message.
func Error(code, topic, reason string) []byte {
	return Control{Op: "error", Code: code, Topic: topic, Reason: reason}.Frame()
}

// PingFrame is the in-band ping.
var PingFrame = Control{Op: "ping"}.Frame()

// Request is a client's control frame.
type Request struct {
	Op    string `json:"op"`
	Topic string `json:"topic"`
	Token string `json:"token"`
	// Epoch and Offset, on a subscribe, ask to recover the topic's events after that position.
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
	// ID, Name and Data are a request's: the client's ID for it, the handler's name and the
	// handler's input.
	ID   string          `json:"id"`
	Name string          `json:"name"`
	Data json.RawMessage `json:"data"`
}

// Reply is the frame answering the request id with data (a JSON value; none when empty).
func Reply(id string, data []byte) []byte {
	b := make([]byte, 0, 32+len(id)+len(data))
	b = append(b, `{"op":"reply","id":`...)
	b = AppendString(b, id)
	if len(data) > 0 {
		b = append(b, `,"data":`...)
		b = append(b, data...)
	}
	return append(b, '}')
}

// ReplyError is the frame answering the request id with an error's code and reason.
func ReplyError(id, code, reason string) []byte {
	b := make([]byte, 0, 48+len(id)+len(code)+len(reason))
	b = append(b, `{"op":"reply","id":`...)
	b = AppendString(b, id)
	b = append(b, `,"code":`...)
	b = AppendString(b, code)
	if reason != "" {
		b = append(b, `,"reason":`...)
		b = AppendString(b, reason)
	}
	return append(b, '}')
}

// AppendString appends s as a JSON string, escaped exactly as encoding/json does.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// WithPosition returns the frame of a stream's event: its payload (a JSON object) with the
// offset and epoch put in front, allocated at its exact size since histories keep it. An event
// without an offset (a broadcast, an ephemeral event) is its payload.
func WithPosition(payload []byte, offset uint64, epoch string) []byte {
	if offset == 0 || len(payload) < 2 {
		return payload
	}
	var head [80]byte
	h := appendPosition(head[:0], offset, epoch)
	b := make([]byte, 0, len(h)+len(payload)-1)
	return append(append(b, h...), payload[1:]...)
}

// PayloadAndFrame copies a stream event's payload (a JSON object) out of a string and builds
// its frame (WithPosition), in one allocation: a broker that receives events as strings (the
// Redis one) gets both for the price of one. The payload must have an offset, and at least
// its two braces.
func PayloadAndFrame(payload string, offset uint64, epoch string) (p, frame []byte) {
	var head [80]byte
	h := appendPosition(head[:0], offset, epoch)
	b := make([]byte, 0, 2*len(payload)+len(h)-1)
	b = append(b, payload...)
	b = append(b, h...)
	b = append(b, payload[1:]...)
	return b[:len(payload):len(payload)], b[len(payload):]
}

// appendPosition appends the start of a frame with a position: the object's opening brace,
// offset and epoch, and the comma before the payload's first member.
func appendPosition(b []byte, offset uint64, epoch string) []byte {
	b = append(b, `{"offset":`...)
	b = strconv.AppendUint(b, offset, 10)
	b = append(b, `,"epoch":`...)
	b = AppendString(b, epoch)
	return append(b, ',')
}

// PayloadOf undoes WithPosition.
func PayloadOf(frame []byte, offset uint64, epoch string) []byte {
	if offset == 0 || len(frame) < 2 {
		return frame
	}
	var head [80]byte
	n := len(appendPosition(head[:0], offset, epoch))
	return append([]byte{'{'}, frame[n:]...)
}
