package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
)

// Presence: each user has a sorted set of its sessions, "<prefix>:{u:<user>}:pres", whose
// members are "<session> <node> <connected ms>" and whose scores are the time each entry
// expires, in Redis's clock (so the nodes' clocks do not matter). The node of a session
// refreshes its entry every PresenceTTL/3; entries past their score are pruned whenever the set
// is written and skipped when it is read, so the sessions of a node killed without closing
// them drop out of presence within PresenceTTL. A user's token refusal ([notify.Hub.Disconnect])
// is "<prefix>:{u:<user>}:nbf", the refusal time in unix ms, kept for the refusal's TTL. Both
// keys carry the hash tag of the user's stream: on Redis Cluster they share the slot of the
// user's position, history and channel.
//
// A connect costs one round trip (joinScript: the entry added and the refusal read), a
// disconnect one (leaveScript), and the upkeep one pipelined round trip per PresenceTTL/3 per
// node, one script call in it per user with sessions on the node.

// DefaultPresenceTTL is the default of Config.PresenceTTL.
const DefaultPresenceTTL = 30 * time.Second

// presence keeps the sessions of this node in the users' presence sets, and reads and writes
// the users' token refusals. mu guards local, and nothing else; the keeper goroutine, started
// by start, returns once the broker's stop is closed.
type presence struct {
	client redis.UniversalClient
	reads  *reader // joins and leaves go through its pipelines
	names  names
	ttl    time.Duration
	log    *slog.Logger
	stop   <-chan struct{} // the broker's
	done   chan struct{}   // closed when the keeper has returned

	mu    sync.Mutex
	local map[string]map[string]struct{} // presence key -> members of this node's sessions
}

func newPresence(client redis.UniversalClient, reads *reader, n names, ttl time.Duration, log *slog.Logger, stop <-chan struct{}) *presence {
	return &presence{client: client, reads: reads, names: n, ttl: ttl, log: log, stop: stop,
		done: make(chan struct{}), local: map[string]map[string]struct{}{}}
}

func (p *presence) start() { go p.keep() }

// wait waits for the keeper, which returns once the broker's stop is closed.
func (p *presence) wait() { <-p.done }

// member is a session's entry in its user's presence set: "id node ms", and " transport"
// after them for a transport other than the WebSocket (whose entries stay as nodes of
// earlier versions wrote and read them).
func member(s notify.SessionInfo) string {
	m := s.ID + " " + s.Node + " " + strconv.FormatInt(s.ConnectedAt.UnixMilli(), 10)
	if s.Transport != "" && s.Transport != "websocket" {
		m += " " + s.Transport
	}
	return m
}

func parseMember(user, m string) (notify.SessionInfo, bool) {
	id, rest, ok1 := strings.Cut(m, " ")
	node, at, ok2 := strings.Cut(rest, " ")
	at, transport, _ := strings.Cut(at, " ")
	ms, err := strconv.ParseInt(at, 10, 64)
	if !ok1 || !ok2 || err != nil {
		return notify.SessionInfo{}, false
	}
	if transport == "" {
		transport = "websocket"
	}
	return notify.SessionInfo{ID: id, UserID: user, Node: node, ConnectedAt: time.UnixMilli(ms), Transport: transport}, true
}

// nowLua is the current time in Redis's clock, in ms.
const nowLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// KEYS: presence, refusal. ARGV: member, ttl ms. Returns the sessions after the add and the
// refusal ("" for none).
var joinScript = redis.NewScript(nowLua + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {redis.call('ZCARD', KEYS[1]), redis.call('GET', KEYS[2]) or ''}
`)

// KEYS: presence. ARGV: member. Returns the sessions after the removal, and 1 if it removed.
var leaveScript = redis.NewScript(nowLua + `
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {redis.call('ZCARD', KEYS[1]), removed}
`)

// KEYS: presence. Returns the live members.
var sessionsScript = redis.NewScript(nowLua + `
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
`)

// KEYS: presence. ARGV: ttl ms, members... Refreshes the members' entries.
var keepScript = redis.NewScript(nowLua + `
local exp = now + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], exp, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return #ARGV - 1
`)

// KEYS: refusal. ARGV: refusal time ms, ttl ms. Keeps the later refusal, for the longer TTL
// (without PEXPIRE's options, which need Redis 7).
var refuseScript = redis.NewScript(`
local v = ARGV[1]
local old = redis.call('GET', KEYS[1])
if old and tonumber(old) > tonumber(v) then
  v = old
end
local ttl = math.max(redis.call('PTTL', KEYS[1]), tonumber(ARGV[2]))
redis.call('SET', KEYS[1], v, 'PX', ttl)
return 1
`)

// join records the session in the user's presence set and reads the user's refusal, in one
// round trip. The node keeps the entry alive until leave.
func (p *presence) join(ctx context.Context, s notify.SessionInfo) (int, time.Time, error) {
	keys, m := p.names.presenceKeys(s.UserID), member(s)
	p.mu.Lock()
	set := p.local[keys[0]]
	if set == nil {
		set = map[string]struct{}{}
		p.local[keys[0]] = set
	}
	set[m] = struct{}{}
	p.mu.Unlock()
	res, err := p.reads.call(ctx, joinScript, keys, m, p.ttl.Milliseconds())
	if err != nil {
		p.forget(keys[0], m)
		return 0, time.Time{}, fmt.Errorf("redisbroker: presence join: %w", err)
	}
	if len(res) != 2 {
		p.forget(keys[0], m)
		return 0, time.Time{}, errors.New("redisbroker: presence join: unexpected reply")
	}
	n, _ := res[0].(int64)
	before, err := parseRefusal(res[1])
	if err != nil {
		p.forget(keys[0], m)
		return 0, time.Time{}, err
	}
	return int(n), before, nil
}

func parseRefusal(v any) (time.Time, error) {
	s, _ := v.(string)
	if s == "" {
		return time.Time{}, nil
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("redisbroker: malformed token refusal %q", s)
	}
	return time.UnixMilli(ms), nil
}

// forget stops keeping a member alive.
func (p *presence) forget(key, m string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if set := p.local[key]; set != nil {
		delete(set, m)
		if len(set) == 0 {
			delete(p.local, key)
		}
	}
}

// leave removes the session from the user's presence set.
func (p *presence) leave(ctx context.Context, s notify.SessionInfo) (int, bool, error) {
	keys, m := p.names.presenceKeys(s.UserID), member(s)
	p.forget(keys[0], m)
	res, err := p.reads.call(ctx, leaveScript, keys[:1], m)
	if err != nil {
		return 0, false, fmt.Errorf("redisbroker: presence leave: %w", err)
	}
	if len(res) != 2 {
		return 0, false, errors.New("redisbroker: presence leave: unexpected reply")
	}
	n, _ := res[0].(int64)
	removed, _ := res[1].(int64)
	return int(n), removed == 1, nil
}

// sessions returns the user's sessions whose entries have not expired, oldest first.
func (p *presence) sessions(ctx context.Context, userID string) ([]notify.SessionInfo, error) {
	ms, err := sessionsScript.Run(ctx, p.client, p.names.presenceKeys(userID)[:1]).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: presence: %w", err)
	}
	out := make([]notify.SessionInfo, 0, len(ms))
	for _, m := range ms {
		if s, ok := parseMember(userID, m); ok {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b notify.SessionInfo) int { return a.ConnectedAt.Compare(b.ConnectedAt) })
	return out, nil
}

// refuse records the user's token refusal for ttl; a later refusal time already recorded
// stays.
func (p *presence) refuse(ctx context.Context, userID string, before time.Time, ttl time.Duration) error {
	err := refuseScript.Run(ctx, p.client, p.names.presenceKeys(userID)[1:], before.UnixMilli(), max(ttl.Milliseconds(), 1)).Err()
	if err != nil {
		return fmt.Errorf("redisbroker: refuse tokens: %w", err)
	}
	return nil
}

// refusedBefore reads the user's token refusal.
func (p *presence) refusedBefore(ctx context.Context, userID string) (time.Time, error) {
	v, err := p.client.Get(ctx, p.names.presenceKeys(userID)[1]).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("redisbroker: read token refusal: %w", err)
	}
	return parseRefusal(v)
}

// keep refreshes this node's entries every PresenceTTL/3 until the broker closes.
func (p *presence) keep() {
	defer close(p.done)
	t := time.NewTicker(p.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			if err := p.refresh(); err != nil {
				p.log.Warn("notify: redisbroker: presence upkeep failed", "err", err)
			}
		}
	}
}

// keepChunk bounds the script calls of one pipeline of the upkeep.
const keepChunk = 500

// refresh refreshes every entry of this node, one script call per user.
func (p *presence) refresh() error {
	p.mu.Lock()
	type user struct {
		key     string
		members []any
	}
	users := make([]user, 0, len(p.local))
	for k, set := range p.local {
		u := user{key: k, members: make([]any, 0, len(set)+1)}
		u.members = append(u.members, p.ttl.Milliseconds())
		for m := range set {
			u.members = append(u.members, m)
		}
		users = append(users, u)
	}
	p.mu.Unlock()
	if len(users) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.ttl/3)
	defer cancel()
	if err := keepScript.Load(ctx, p.client).Err(); err != nil {
		return err
	}
	for len(users) > 0 {
		n := min(len(users), keepChunk)
		pipe := p.client.Pipeline()
		for _, u := range users[:n] {
			keepScript.EvalSha(ctx, pipe, []string{u.key}, u.members...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		users = users[n:]
	}
	return nil
}
