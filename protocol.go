package notify

import "strconv"

// CloseCode is a WebSocket close code. PROTOCOL.md says what a client does on each.
type CloseCode int

// The close codes the hub uses.
const (
	// CloseNormal: the session ended normally.
	CloseNormal CloseCode = 1000
	// CloseGoingAway: the server is shutting down; reconnect with a backoff.
	CloseGoingAway CloseCode = 1001
	// CloseAbnormal: the connection broke. Never sent, only reported (Stats.Disconnects).
	CloseAbnormal CloseCode = 1006
	// CloseTryAgain (1013): the broker could not subscribe the session or read its stream's
	// position; reconnect with a backoff, recovering.
	CloseTryAgain CloseCode = 1013
	// CloseTokenExpired: the token expired without an in-band refresh; fetch a fresh token and
	// reconnect.
	CloseTokenExpired CloseCode = 4000
	// CloseSignedOut: the application disconnected the user ([Hub.Disconnect]), on every
	// node; fetch a fresh token, and stop when there is none (the user signed out).
	CloseSignedOut CloseCode = 4001
	// CloseSlowConsumer: the client read too slowly and its queue overflowed; reconnect.
	CloseSlowConsumer CloseCode = 4002
	// CloseProtocolAbuse: 10 bad messages in a row (maxStrikes); do not reconnect.
	CloseProtocolAbuse CloseCode = 4003
	// CloseRateLimited: the client kept sending faster than Config.MessageRate; reconnect
	// after a backoff.
	CloseRateLimited CloseCode = 4029
)

// String returns the code's meaning, as the close frame's reason says it.
func (c CloseCode) String() string {
	switch c {
	case CloseNormal:
		return "normal closure"
	case CloseGoingAway:
		return "going away, reconnect"
	case CloseTryAgain:
		return "broker unavailable, try again later"
	case CloseAbnormal:
		return "abnormal closure"
	case 1009:
		return "message too big"
	case CloseTokenExpired:
		return "token expired"
	case CloseSignedOut:
		return "signed out"
	case CloseSlowConsumer:
		return "slow consumer"
	case CloseProtocolAbuse:
		return "too many bad messages"
	case CloseRateLimited:
		return "rate limited"
	}
	return "close code " + strconv.Itoa(int(c))
}

// maxStrikes is how many bad client messages in a row close a session with CloseProtocolAbuse.
const maxStrikes = 10
