package notify

import (
	"slices"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a hub's state and of its counters since New. The counters only grow;
// an exporter (adapters/promnotify for Prometheus) turns them into rates. Every map is keyed by
// a bounded set of values, never by users or topics.
type Stats struct {
	Sessions int // open sessions
	// SSESessions are the open sessions over server-sent events, of Sessions; the rest are
	// WebSockets.
	SSESessions int
	Users       int // users with at least one session
	Topics      int // topics with at least one subscriber on this hub

	Connects uint64 // sessions opened
	// Disconnects counts ended sessions by close code: the code the hub closed with, the one the
	// client sent, or 1006 when the connection just broke. Codes a client may choose freely
	// and this protocol does not define are counted under 0. Every code has an entry, zero
	// included, so that an exporter's series exist before their first event.
	Disconnects map[CloseCode]uint64
	// SSEConnects and SSEDisconnects count the sessions over server-sent events, of Connects
	// and Disconnects (the same keys); the rest are WebSockets. A stream's close code is the
	// one its close event carried, or 1006 when the response broke off.
	SSEConnects    uint64
	SSEDisconnects map[CloseCode]uint64
	// Refused counts upgrade requests answered without an upgrade, by reason: the 401 reasons
	// ("no_token", "token_expired", "token_invalid", "token_too_large", and "signed_out" for a
	// token [Hub.Disconnect] refused), "origin" (403),
	// "user_sessions" (429), "hub_sessions" and "shutting_down" (503), "bad_request" (400);
	// every reason has an entry, zero included.
	Refused map[string]uint64

	Sends      uint64 // successful and failed calls of Send
	Publishes  uint64 // calls of Publish
	Broadcasts uint64 // calls of Broadcast
	Deliveries uint64 // events handed to sessions on this hub (one per session reached)

	// FramesWritten counts the WebSocket text frames written to clients (one may hold several
	// events) and, on event streams, the events one such frame would have held, written together.
	FramesWritten uint64
	BytesWritten  uint64 // their payload bytes

	SlowConsumers uint64 // sessions closed with CloseSlowConsumer
	AbuseCloses   uint64 // sessions closed with CloseProtocolAbuse
	RateLimited   uint64 // client messages refused with the error code "rate_limited"

	Recovered    uint64 // recoveries asked for and complete (recovered: true)
	NotRecovered uint64 // recoveries asked for and impossible (recovered: false)

	BrokerErrors uint64 // failed broker calls (publish, subscribe, unsubscribe, history, presence)

	// Online and Offline count the cluster-wide transitions that happened on this hub: a
	// user's first session anywhere starting here, and a last one ending here (the calls of
	// Config.OnOnline and OnOffline). Present is how many of this hub's sessions are recorded
	// in presence ([Hub.Presence]): the welcomed sessions that have not ended, as
	// Config.OnSessionStart and OnSessionEnd saw them.
	Online, Offline uint64
	Present         int

	// SendDuration is the distribution of the time Send, Publish and Broadcast took, from the
	// call to the broker's acceptance.
	SendDuration Histogram
}

// Histogram is a distribution of durations in fixed buckets, Prometheus style.
type Histogram struct {
	// Bounds are the buckets' upper bounds, ascending; Counts[i] counts observations at or
	// below Bounds[i] (cumulative), and Count all of them, the last bucket being +Inf.
	Bounds []time.Duration
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

// sendBounds are SendDuration's buckets: an in-memory Send takes microseconds, one through
// Redis a round trip.
var sendBounds = [...]time.Duration{
	10 * time.Microsecond, 25 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond,
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, time.Second,
}

// knownCloseCodes are the close codes counted under their own number in Stats.Disconnects.
var knownCloseCodes = [...]CloseCode{CloseNormal, CloseGoingAway, 1005, CloseAbnormal, 1009, 1011, CloseTryAgain, CloseTokenExpired,
	CloseSignedOut, CloseSlowConsumer, CloseProtocolAbuse, CloseRateLimited}

// refusal labels, the keys of Stats.Refused.
const (
	refusedNoToken      = "no_token"
	refusedExpired      = "token_expired"
	refusedInvalid      = "token_invalid"
	refusedTooLarge     = "token_too_large"
	refusedOrigin       = "origin"
	refusedUserSessions = "user_sessions"
	refusedHubSessions  = "hub_sessions"
	refusedShutdown     = "shutting_down"
	refusedBadRequest   = "bad_request"
	refusedSignedOut    = "signed_out"
)

var refusalLabels = [...]string{refusedNoToken, refusedExpired, refusedInvalid, refusedTooLarge,
	refusedOrigin, refusedUserSessions, refusedHubSessions, refusedShutdown, refusedBadRequest, refusedSignedOut}

// counters are a hub's metrics. Every field is an atomic: there is no lock, and each is
// written where its event happens (the send path adds four atomic operations per call).
type counters struct {
	connects    [numTransports]atomic.Uint64
	disconnects [numTransports][len(knownCloseCodes) + 1]atomic.Uint64 // the last one: other codes
	refused     [len(refusalLabels)]atomic.Uint64

	sends, publishes, broadcasts atomic.Uint64
	frames, bytes                atomic.Uint64
	slow, abuse, rateLimited     atomic.Uint64
	recovered, notRecovered      atomic.Uint64
	brokerErrors                 atomic.Uint64
	online, offline              atomic.Uint64
	present                      atomic.Int64

	sendBuckets [len(sendBounds) + 1]atomic.Uint64 // not cumulative; the last one: +Inf
	sendSum     atomic.Int64                       // nanoseconds
}

// written counts a frame of n bytes written to a client.
func (m *counters) written(n int) {
	m.frames.Add(1)
	m.bytes.Add(uint64(n))
}

func (m *counters) disconnected(t transportKind, code CloseCode) {
	for i, k := range knownCloseCodes {
		if k == code {
			m.disconnects[t][i].Add(1)
			return
		}
	}
	m.disconnects[t][len(knownCloseCodes)].Add(1)
}

func (m *counters) refuse(label string) {
	for i, l := range refusalLabels {
		if l == label {
			m.refused[i].Add(1)
			return
		}
	}
}

// observeSend records one send's duration.
func (m *counters) observeSend(d time.Duration) {
	i := 0
	for i < len(sendBounds) && d > sendBounds[i] {
		i++
	}
	m.sendBuckets[i].Add(1)
	m.sendSum.Add(int64(d))
}

// recovery counts a recovery's outcome; nil means none was asked.
func (m *counters) recovery(recovered *bool) {
	switch {
	case recovered == nil:
	case *recovered:
		m.recovered.Add(1)
	default:
		m.notRecovered.Add(1)
	}
}

// fill copies the counters into s.
func (m *counters) fill(s *Stats) {
	s.SSEConnects = m.connects[transportSSE].Load()
	s.Connects = m.connects[transportWebSocket].Load() + s.SSEConnects
	s.Disconnects = make(map[CloseCode]uint64, len(knownCloseCodes)+1)
	s.SSEDisconnects = make(map[CloseCode]uint64, len(knownCloseCodes)+1)
	for i := range len(knownCloseCodes) + 1 {
		var code CloseCode // 0: the others
		if i < len(knownCloseCodes) {
			code = knownCloseCodes[i]
		}
		sse := m.disconnects[transportSSE][i].Load()
		s.SSEDisconnects[code] = sse
		s.Disconnects[code] = m.disconnects[transportWebSocket][i].Load() + sse
	}
	s.Refused = make(map[string]uint64, len(refusalLabels))
	for i, l := range refusalLabels {
		s.Refused[l] = m.refused[i].Load()
	}
	s.Sends, s.Publishes, s.Broadcasts = m.sends.Load(), m.publishes.Load(), m.broadcasts.Load()
	s.FramesWritten, s.BytesWritten = m.frames.Load(), m.bytes.Load()
	s.SlowConsumers, s.AbuseCloses, s.RateLimited = m.slow.Load(), m.abuse.Load(), m.rateLimited.Load()
	s.Recovered, s.NotRecovered = m.recovered.Load(), m.notRecovered.Load()
	s.BrokerErrors = m.brokerErrors.Load()
	s.Online, s.Offline, s.Present = m.online.Load(), m.offline.Load(), int(m.present.Load())
	h := Histogram{Bounds: slices.Clone(sendBounds[:]), Counts: make([]uint64, len(sendBounds))}
	var cum uint64
	for i := range m.sendBuckets {
		cum += m.sendBuckets[i].Load()
		if i < len(sendBounds) {
			h.Counts[i] = cum
		}
	}
	h.Count, h.Sum = cum, time.Duration(m.sendSum.Load())
	s.SendDuration = h
}
