package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gonotify/notify/internal/wire"
)

// Commands about one user (disconnect it, subscribe or unsubscribe its sessions) travel to
// every node as ephemeral messages on the user's own stream: only the nodes holding a session
// of the user are subscribed to it, so a command costs what the user's sessions cost and
// reaches no other node. A command's payload starts with controlMark; an event's is a JSON
// object and starts with '{', so the two cannot be confused.
const controlMark = '!'

// command is a control message's body.
type command struct {
	Op    string `json:"op"`              // "disconnect", "subscribe", "unsubscribe", "message" or "event"
	Topic string `json:"topic,omitempty"` // of subscribe and unsubscribe
	// Before, in a disconnect, limits it to the sessions whose token a refusal at that time
	// (unix ms) refuses: the sweep (see Hub.sweepRefused). Zero: every session.
	Before int64  `json:"before,omitempty"`
	Node   string `json:"node"` // the hub that sent it: it has done the work for its own sessions
	// Session and Data, in a message, are the session the client POSTed a message for and
	// the message (see Hub.toSession); in an event, the session and the event's payload (see
	// Hub.SendSession).
	Session string `json:"session,omitempty"`
	Data    []byte `json:"data,omitempty"`
}

func (c command) payload() []byte {
	b, _ := json.Marshal(c) // strings and an integer: cannot fail
	return append([]byte{controlMark}, b...)
}

// isCommand reports whether a message is a command rather than an event.
func isCommand(m Message) bool {
	return m.Offset == 0 && len(m.Payload) > 0 && m.Payload[0] == controlMark
}

// DisconnectOptions are the options of [Hub.Disconnect]. The zero value closes the sessions
// and refuses no token.
type DisconnectOptions struct {
	// RefuseBefore, when set, refuses the user's tokens issued before it ("iat"), and tokens
	// without "iat", on every node: at connect (401) and in a refresh (an error frame, then
	// close 4001). Set it to time.Now() for "sign out everywhere". Default: no refusal.
	RefuseBefore time.Time
	// RefuseFor is how long the refusal is kept: as long as a token issued before
	// RefuseBefore could still be valid. Default Config.TokenLifetime plus Config.Leeway.
	RefuseFor time.Duration
}

// Disconnect closes every session of the user, on every hub sharing the broker, with
// [CloseSignedOut]: the reference client then asks its token function for a fresh token and
// stops when there is none. With opts.RefuseBefore set it first records the refusal of older
// tokens, so that a session cannot come back with the token it had. A user with no session
// is not an error. The error is returned when the refusal or the command could not be handed
// to the broker (Redis unreachable): then this hub's own sessions of the user are closed
// still, and the other nodes' may not be.
//
// A session whose connect was verified in the few milliseconds before the refusal was
// recorded, and whose node subscribed to the user's stream only after the command went out,
// misses the command: with a refusal, Disconnect sends a second one 2 seconds later
// (sweepDelay) that closes the sessions the refusal refuses, on every node.
func (h *Hub) Disconnect(ctx context.Context, userID string, opts DisconnectOptions) error {
	if userID == "" {
		return ErrInvalidUser
	}
	if opts.RefuseFor < 0 {
		return fmt.Errorf("%w: DisconnectOptions.RefuseFor is negative", ErrConfig)
	}
	if !opts.RefuseBefore.IsZero() {
		ttl := opts.RefuseFor
		if ttl == 0 {
			ttl = h.cfg.TokenLifetime + h.cfg.Leeway
		}
		if err := h.presence.Refuse(ctx, userID, opts.RefuseBefore, ttl); err != nil {
			h.stats.brokerErrors.Add(1)
			h.disconnectLocal(userID, time.Time{})
			return fmt.Errorf("notify: disconnect %q: record the refusal: %w", userID, err)
		}
	}
	h.disconnectLocal(userID, time.Time{})
	if err := h.command(ctx, userID, command{Op: "disconnect"}); err != nil {
		if errors.Is(err, ErrClosed) {
			return err
		}
		return fmt.Errorf("notify: disconnect %q on other nodes: %w", userID, err)
	}
	if !opts.RefuseBefore.IsZero() {
		h.later(sweepDelay, func() { h.sweepRefused(userID, opts.RefuseBefore) })
	}
	return nil
}

// sweepDelay is how long after a Disconnect with a refusal its sweep runs: longer than a
// connect takes from its refusal check to its subscription to the user's stream.
const sweepDelay = 2 * time.Second

// sweepRefused closes the sessions of the user, on every node, whose token a refusal at
// before refuses.
func (h *Hub) sweepRefused(userID string, before time.Time) {
	h.disconnectLocal(userID, before)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := h.command(ctx, userID, command{Op: "disconnect", Before: before.UnixMilli()}); err != nil && !errors.Is(err, ErrClosed) {
		h.cfg.Logger.Warn("notify: disconnect sweep failed", "user", userID, "err", err)
	}
}

// disconnectLocal closes this hub's sessions of the user: every one when before is zero,
// otherwise those whose token a refusal at before refuses.
func (h *Hub) disconnectLocal(userID string, before time.Time) {
	for _, s := range h.idx.sessionsOf(userID) {
		if before.IsZero() || h.refusedBy(Identity{IssuedAt: s.issuedAt()}, before) != nil {
			s.close(CloseSignedOut)
		}
	}
}

// later runs fn after d on a goroutine the hub owns, unless Shutdown comes first.
func (h *Hub) later(d time.Duration, fn func()) {
	h.acceptMu.Lock()
	defer h.acceptMu.Unlock()
	if h.closed.Load() {
		return
	}
	h.cmds.wg.Add(1)
	go func() {
		defer h.cmds.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			fn()
		case <-h.stop:
		}
	}()
}

// command sends a command to the other nodes holding sessions of the user. The in-memory
// broker delivers it back to this hub only, which ignores its own. It returns ErrClosed, or the
// broker's error for the caller to wrap.
func (h *Hub) command(ctx context.Context, userID string, cmd command) error {
	if h.closed.Load() {
		return ErrClosed
	}
	cmd.Node = h.node
	if _, err := h.broker.Publish(ctx, wire.UserStream(userID), cmd.payload(), true); err != nil {
		h.stats.brokerErrors.Add(1)
		return err
	}
	return nil
}

// Subscribe subscribes every current session of the user to topic, on every hub sharing the
// broker, without authorization checks: the server is trusted. Each session is told with a
// "subscribed" frame marked "server":true. Sessions the user opens later are subscribed only
// if [Config.Subscriptions] returns the topic for them. It returns an error for this hub's
// sessions the broker could not subscribe (they stay unsubscribed), and when the command could
// not reach the other nodes; those subscribe their sessions after it returns, and log their
// failures.
func (h *Hub) Subscribe(ctx context.Context, userID, topic string) error {
	return h.serverSubscription(ctx, userID, topic, true)
}

// Unsubscribe ends the subscriptions of the user's current sessions to topic, on every hub
// sharing the broker. Errors as [Hub.Subscribe].
func (h *Hub) Unsubscribe(ctx context.Context, userID, topic string) error {
	return h.serverSubscription(ctx, userID, topic, false)
}

func (h *Hub) serverSubscription(ctx context.Context, userID, topic string, on bool) error {
	if userID == "" {
		return ErrInvalidUser
	}
	if err := validTopic(topic); err != nil {
		return err
	}
	op := "unsubscribe"
	if on {
		op = "subscribe"
	}
	local := h.subscribeLocal(ctx, userID, topic, on)
	err := h.command(ctx, userID, command{Op: op, Topic: topic})
	if err != nil && !errors.Is(err, ErrClosed) {
		err = fmt.Errorf("notify: %s %q to %q on other nodes: %w", op, userID, topic, err)
	}
	return errors.Join(local, err)
}

// subscribeLocal applies a server subscription to this hub's sessions of the user.
func (h *Hub) subscribeLocal(ctx context.Context, userID, topic string, on bool) error {
	var errs []error
	for _, s := range h.idx.sessionsOf(userID) {
		if on {
			_, err := s.join(ctx, topic, nil, true)
			errs = append(errs, err)
		} else {
			s.leave(ctx, topic, wire.Control{Op: "unsubscribed", Topic: topic})
		}
	}
	return errors.Join(errs...)
}

// commanded handles a command delivered on a user's stream. A disconnect is done at once: it
// only queues close frames. Subscriptions call the broker, which deliver may not wait for:
// they go to the hub's commander, in order.
func (h *Hub) commanded(user string, m Message) {
	var cmd command
	if err := json.Unmarshal(m.Payload[1:], &cmd); err != nil {
		h.cfg.Logger.Error("notify: malformed command", "user", user, "err", err)
		return
	}
	if cmd.Node == h.node {
		return // done by the sender itself
	}
	switch cmd.Op {
	case "disconnect":
		var before time.Time
		if cmd.Before != 0 {
			before = time.UnixMilli(cmd.Before)
		}
		h.disconnectLocal(user, before)
	case "message":
		if t := h.sse.get(user, cmd.Session); t != nil && t.deliver(cmd.Data) == http.StatusTooManyRequests {
			h.stats.rateLimited.Add(1) // the POST was answered already: the message is dropped
		}
	case "event":
		h.sendLocal(user, cmd.Session, cmd.Data)
	case "subscribe", "unsubscribe":
		h.cmds.push(h, queuedCommand{user: user, cmd: cmd})
	default:
		h.cfg.Logger.Warn("notify: unknown command", "op", cmd.Op)
	}
}

type queuedCommand struct {
	user string
	cmd  command
}

// commander runs the subscription commands of other nodes in the order they arrived, on one
// goroutine the hub owns. mu guards queue and running; the goroutine runs while the queue is
// not empty and is waited for by Shutdown (through wg, which also counts Hub.later's).
type commander struct {
	mu      sync.Mutex
	queue   []queuedCommand
	running bool
	wg      sync.WaitGroup
}

// push queues a command and starts the goroutine if it is not running. After Shutdown began
// nothing is queued: the sessions are closing anyway.
func (q *commander) push(h *Hub, c queuedCommand) {
	h.acceptMu.Lock()
	defer h.acceptMu.Unlock()
	if h.closed.Load() {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queue = append(q.queue, c)
	if !q.running {
		q.running = true
		q.wg.Add(1)
		go q.run(h)
	}
}

func (q *commander) run(h *Hub) {
	defer q.wg.Done()
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.running = false
			q.queue = nil
			q.mu.Unlock()
			return
		}
		c := q.queue[0]
		q.queue = q.queue[1:]
		q.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		err := h.subscribeLocal(ctx, c.user, c.cmd.Topic, c.cmd.Op == "subscribe")
		cancel()
		if err != nil {
			h.cfg.Logger.Warn("notify: server subscription failed", "user", c.user, "topic", c.cmd.Topic, "err", err)
		}
	}
}

// Presence returns the user's sessions on every hub sharing [Config.Presence], oldest first
// (this hub's own without one). It is a snapshot. The
// sessions of a node that died without closing them stay listed until their entries expire
// (adapters/redisbroker: Config.PresenceTTL, 30 s by default). An empty user ID is
// [ErrInvalidUser]; a user without sessions gets an empty list and no error.
func (h *Hub) Presence(ctx context.Context, userID string) ([]SessionInfo, error) {
	if userID == "" {
		return nil, ErrInvalidUser
	}
	s, err := h.presence.Sessions(ctx, userID)
	if err != nil {
		h.stats.brokerErrors.Add(1)
		return nil, fmt.Errorf("notify: presence of %q: %w", userID, err)
	}
	return s, nil
}

// checkRefused returns the error that refuses id's token when [Hub.Disconnect] refused the
// user's tokens issued before a time later than the token's, and nil otherwise; an error
// reading the refusal is returned too (it refuses as well: a refusal must not be skipped
// because Redis did not answer). It is the one check of refusals, called on every refresh
// and by every authentication path that does not join presence (see admitRequest).
func (h *Hub) checkRefused(ctx context.Context, id Identity) error {
	before, err := h.RefusedBefore(ctx, id.UserID)
	if err != nil {
		return err
	}
	return h.refusedBy(id, before)
}

// refusedBy applies a refusal time to a token. iat has a precision of a second: a token
// issued in the second of the refusal is refused too (the old token of a tab that logged out
// in that second must not come back; a fresh one issued in it is refused once, and the next
// second's is not). With Config.Leeway set, a token issued less than Leeway before the refusal
// is accepted: with clocks that far apart, it cannot be told from one issued just after. A
// token without iat is refused by any refusal.
func (h *Hub) refusedBy(id Identity, before time.Time) error {
	if before.IsZero() {
		return nil
	}
	if id.IssuedAt.IsZero() {
		return refused(refusedSignedOut, "token has no iat and the user was signed out")
	}
	if id.IssuedAt.Unix() <= before.Add(-h.cfg.Leeway).Unix() {
		return refused(refusedSignedOut, "token issued before the user was signed out")
	}
	return nil
}

// RefusedBefore returns the time before which [Hub.Disconnect] refused the user's tokens,
// as every hub sharing the broker sees it; zero when there is no refusal (or it has expired).
// An application checks its own login sessions against it, so that "sign out everywhere" ends
// them too and its token endpoint stops handing out fresh tokens to a signed-out browser.
func (h *Hub) RefusedBefore(ctx context.Context, userID string) (time.Time, error) {
	if userID == "" {
		return time.Time{}, ErrInvalidUser
	}
	t, err := h.presence.RefusedBefore(ctx, userID)
	if err != nil {
		h.stats.brokerErrors.Add(1)
		return time.Time{}, fmt.Errorf("notify: read token refusals: %w", err)
	}
	return t, nil
}
