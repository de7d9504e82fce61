package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
)

// SendSession delivers ev to one session of the user, on whichever hub sharing the broker
// holds it: a support agent's "refresh this device". sessionID is the session's ID as its
// welcome frame, [Hub.Presence] (SessionInfo.ID) and [SessionFrom] give it; a tab part
// ("<session>.<tab>", from SessionFrom) is dropped, and every tab sharing the session gets
// the event.
//
// The event is ephemeral whatever ev.Ephemeral says: it has no offset, is not kept in a
// history and is not replayed; a session that reconnects is a new session, with another ID.
// ev.Except is ignored. A session that cannot keep up is closed as a slow consumer, as for
// [Hub.Send].
//
// The Report's Nodes is 1 when a hub held the session and was handed the event, and 0 when
// none did: a session that ended, never was, or is another user's is not an error. Finding a
// session on another hub reads presence ([Config.Presence]; without one, only this hub's
// sessions are found). Errors: [ErrInvalidUser] for an empty user, [ErrInvalidSession] for an
// ID that SessionFrom would not return, [ErrInvalidEvent], [ErrClosed], and a failure to
// read presence or to reach the broker.
func (h *Hub) SendSession(ctx context.Context, userID, sessionID string, ev Event) (Report, error) {
	h.stats.sends.Add(1)
	if userID == "" {
		return Report{}, ErrInvalidUser
	}
	if !validExcept(sessionID) {
		return Report{}, fmt.Errorf("%w: %q", ErrInvalidSession, sessionID)
	}
	sessionID, _, _ = cutTab(sessionID)
	ev.Except = ""
	sn, payload, err := h.begin(ctx, ev, "")
	if err != nil {
		return Report{}, err
	}
	defer sn.end()
	if h.sendLocal(userID, sessionID, payload) {
		return Report{Nodes: 1}, nil
	}
	sessions, err := h.presence.Sessions(ctx, userID)
	if err != nil {
		h.stats.brokerErrors.Add(1)
		return Report{}, fmt.Errorf("notify: send to session %q: presence: %w", sessionID, err)
	}
	if !slices.ContainsFunc(sessions, func(s SessionInfo) bool { return s.ID == sessionID && s.Node != h.node }) {
		return Report{}, nil
	}
	if err := h.command(ctx, userID, command{Op: "event", Session: sessionID, Data: payload}); err != nil {
		if errors.Is(err, ErrClosed) {
			return Report{}, err
		}
		return Report{}, fmt.Errorf("notify: send to session %q: broker: %w", sessionID, err)
	}
	return Report{Nodes: 1}, nil
}

// sendLocal queues an event's payload for the user's session on this hub; false when the hub
// does not hold it.
func (h *Hub) sendLocal(userID, sessionID string, payload []byte) bool {
	x := h.idx
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, s := range x.users[userID] {
		if s.id == sessionID {
			if s.out.enqueue(bytes.Clone(payload)) {
				h.fl.queueOne(&s.out)
			}
			return true
		}
	}
	return false
}
