package notify

import (
	"strconv"
	"strings"
)

// Close codes the hub uses besides the standard 1000, 1001 and 1009. PROTOCOL.md says what a
// client does on each.
const (
	// CloseTokenExpired: the token expired without an in-band refresh; fetch a fresh token and
	// reconnect.
	CloseTokenExpired = 4000
	// CloseSlowConsumer: the client read too slowly and its queue overflowed; reconnect.
	CloseSlowConsumer = 4002
	// CloseProtocolAbuse: 10 bad messages in a row (maxStrikes); do not reconnect.
	CloseProtocolAbuse = 4003
	// CloseRateLimited: the client kept sending faster than Config.MessageRate; reconnect
	// after a backoff.
	CloseRateLimited = 4029
)

// Error codes of "error" control frames.
const (
	codeBadRequest    = "bad_request"
	codeUnknownOp     = "unknown_op"
	codeInvalidTopic  = "invalid_topic"
	codeForbidden     = "forbidden"
	codeTooManyTopics = "too_many_topics"
	codeInvalidToken  = "invalid_token"
	codeRateLimited   = "rate_limited"
)

// maxStrikes is how many bad client messages in a row close a session with CloseProtocolAbuse.
const maxStrikes = 10

// control is a control frame, server to client.
type control struct {
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
}

// frame encodes c as json.Marshal would (TestControlFrame compares them), without reflection:
// a welcome per new session is on the connection path.
func (c control) frame() []byte {
	b := make([]byte, 0, 64+len(c.User)+len(c.Session)+len(c.Topic)+len(c.Reason)+len(c.Epoch))
	b = append(b, `{"op":`...)
	b = appendString(b, c.Op)
	str := func(key, v string) {
		if v != "" {
			b = append(b, key...)
			b = appendString(b, v)
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
	return append(b, '}')
}

// request is a client's control frame.
type request struct {
	Op    string `json:"op"`
	Topic string `json:"topic"`
	Token string `json:"token"`
	// Epoch and Offset, on a subscribe, ask to recover the topic's events after that position.
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// Stream names: one stream per user, one per topic, one for broadcasts.
const broadcastStream = "b"

const userPrefix, topicPrefix = "u:", "t:"

func userStream(user string) string   { return userPrefix + user }
func topicStream(topic string) string { return topicPrefix + topic }
func isUserStream(s string) bool      { return strings.HasPrefix(s, userPrefix) }

var pingFrame = control{Op: "ping"}.frame()
