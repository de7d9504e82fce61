package notify

import (
	"slices"
	"sync"
)

// index is the hub's directory of sessions: every session, each user's, each topic's, and
// which topics each session is subscribed to. Every session and each user's sessions are
// slices, not sets: a delivery iterates them, which costs less than iterating a map
// (membership.slot makes removal from all a swap).
//
// mu guards every field. Deliveries hold mu for reading and read all, users and topics
// directly; everything else goes through the methods, which take mu themselves. Nothing is
// called with mu held but a session's deliver (which takes the session's locks, never mu).
type index struct {
	mu     sync.RWMutex
	all    []*session
	users  map[string][]*session
	topics map[string]map[*session]struct{}
	member map[*session]*membership
}

// membership is an indexed session's place in the index.
type membership struct {
	slot int // in all
	// topics maps each topic the session is subscribed to to true when the application
	// subscribed it (Hub.Subscribe), false when the client did. nil until the first.
	topics map[string]bool
}

func newIndex() *index {
	return &index{users: make(map[string][]*session), topics: make(map[string]map[*session]struct{}),
		member: make(map[*session]*membership)}
}

// add indexes a session.
func (x *index) add(s *session) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.member[s] = &membership{slot: len(x.all)}
	x.all = append(x.all, s)
	x.users[s.user] = append(x.users[s.user], s)
}

// remove takes a session out of the index and returns the topics it was subscribed to. Later
// subscribes of the session fail.
func (x *index) remove(s *session) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.member[s]
	if m == nil {
		return nil
	}
	delete(x.member, s)
	last := len(x.all) - 1
	if m.slot != last {
		moved := x.all[last]
		x.all[m.slot] = moved
		x.member[moved].slot = m.slot
	}
	x.all[last] = nil
	x.all = x.all[:last]
	if cap(x.all) > 1024 && len(x.all) < cap(x.all)/4 { // let a past peak's memory go
		x.all = slices.Clone(x.all)
	}
	set := x.users[s.user]
	if i := slices.Index(set, s); i >= 0 {
		last := len(set) - 1
		set[i] = set[last]
		set[last] = nil
		set = set[:last]
	}
	if len(set) == 0 {
		delete(x.users, s.user)
	} else {
		x.users[s.user] = set
	}
	topics := make([]string, 0, len(m.topics))
	for t := range m.topics {
		x.unindexTopic(s, t)
		topics = append(topics, t)
	}
	return topics
}

// subscribe adds topic to the session's subscriptions; byServer marks one the application
// made, which a token's grants do not revoke. It reports false when the session was
// subscribed already (an application's subscribe then makes it the application's) or is no
// longer indexed.
func (x *index) subscribe(s *session, topic string, byServer bool) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.member[s]
	if m == nil {
		return false
	}
	if _, had := m.topics[topic]; had {
		if byServer {
			m.topics[topic] = true
		}
		return false
	}
	if m.topics == nil { // most sessions subscribe to no topic
		m.topics = make(map[string]bool)
	}
	m.topics[topic] = byServer
	set := x.topics[topic]
	if set == nil {
		set = make(map[*session]struct{})
		x.topics[topic] = set
	}
	set[s] = struct{}{}
	return true
}

// unsubscribe ends the session's subscription to topic; it reports false when there was none.
func (x *index) unsubscribe(s *session, topic string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.member[s]
	if m == nil {
		return false
	}
	if _, had := m.topics[topic]; !had {
		return false
	}
	delete(m.topics, topic)
	x.unindexTopic(s, topic)
	return true
}

func (x *index) unindexTopic(s *session, topic string) {
	if set := x.topics[topic]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(x.topics, topic)
		}
	}
}

// subscription reports whether the session is subscribed to topic, and to how many topics.
func (x *index) subscription(s *session, topic string) (subscribed bool, n int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if m := x.member[s]; m != nil {
		_, subscribed = m.topics[topic]
		n = len(m.topics)
	}
	return subscribed, n
}

// clientTopics returns the topics the client subscribed the session to itself.
func (x *index) clientTopics(s *session) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var own []string
	if m := x.member[s]; m != nil {
		for t, byServer := range m.topics {
			if !byServer {
				own = append(own, t)
			}
		}
	}
	return own
}

// sessionsOf returns a copy of the user's sessions.
func (x *index) sessionsOf(user string) []*session {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return slices.Clone(x.users[user])
}

// count returns how many sessions the user has.
func (x *index) count(user string) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.users[user])
}

// sizes returns how many sessions, users and topics are indexed.
func (x *index) sizes() (sessions, users, topics int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.all), len(x.users), len(x.topics)
}

// each calls fn for every session, with mu held for reading: fn must not use the index.
func (x *index) each(fn func(*session)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, s := range x.all {
		fn(s)
	}
}
