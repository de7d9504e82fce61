package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/internal/wire"
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

// DefaultPresenceTTL is the default of Options.PresenceTTL.
const DefaultPresenceTTL = 30 * time.Second

var _ notify.Presence = (*Broker)(nil)

// presenceState is the presence this node keeps alive. mu guards local; the keeper goroutine
// is the broker's (see Start and Close).
type presenceState struct {
	mu    sync.Mutex
	local map[string]map[string]struct{} // presence key -> members of this node's sessions
	done  chan struct{}                  // closed when the keeper has returned
}

// presenceKeys returns the user's presence set and refusal keys.
func (b *Broker) presenceKeys(user string) []string {
	k := b.opts.Prefix + ":{" + wire.UserStream(user) + "}"
	return []string{k + ":pres", k + ":nbf"}
}

func member(s notify.SessionInfo) string {
	return s.ID + " " + s.Node + " " + strconv.FormatInt(s.ConnectedAt.UnixMilli(), 10)
}

func parseMember(user, m string) (notify.SessionInfo, bool) {
	id, rest, ok1 := strings.Cut(m, " ")
	node, at, ok2 := strings.Cut(rest, " ")
	ms, err := strconv.ParseInt(at, 10, 64)
	if !ok1 || !ok2 || err != nil {
		return notify.SessionInfo{}, false
	}
	return notify.SessionInfo{ID: id, UserID: user, Node: node, ConnectedAt: time.UnixMilli(ms)}, true
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

// Join records the session in the user's presence set and reads the user's refusal, in one
// round trip. The node keeps the entry alive until Leave.
func (b *Broker) Join(ctx context.Context, s notify.SessionInfo) (int, time.Time, error) {
	keys, m := b.presenceKeys(s.UserID), member(s)
	b.pres.mu.Lock()
	set := b.pres.local[keys[0]]
	if set == nil {
		set = map[string]struct{}{}
		b.pres.local[keys[0]] = set
	}
	set[m] = struct{}{}
	b.pres.mu.Unlock()
	res, err := b.call(ctx, joinScript, keys, m, b.opts.PresenceTTL.Milliseconds())
	if err != nil {
		b.forget(keys[0], m)
		return 0, time.Time{}, fmt.Errorf("redisbroker: presence join: %w", err)
	}
	if len(res) != 2 {
		b.forget(keys[0], m)
		return 0, time.Time{}, errors.New("redisbroker: presence join: unexpected reply")
	}
	n, _ := res[0].(int64)
	before, err := parseRefusal(res[1])
	if err != nil {
		b.forget(keys[0], m)
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
func (b *Broker) forget(key, m string) {
	b.pres.mu.Lock()
	defer b.pres.mu.Unlock()
	if set := b.pres.local[key]; set != nil {
		delete(set, m)
		if len(set) == 0 {
			delete(b.pres.local, key)
		}
	}
}

// Leave removes the session from the user's presence set.
func (b *Broker) Leave(ctx context.Context, s notify.SessionInfo) (int, bool, error) {
	keys, m := b.presenceKeys(s.UserID), member(s)
	b.forget(keys[0], m)
	res, err := b.call(ctx, leaveScript, keys[:1], m)
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

// Sessions returns the user's sessions whose entries have not expired, oldest first.
func (b *Broker) Sessions(ctx context.Context, userID string) ([]notify.SessionInfo, error) {
	ms, err := sessionsScript.Run(ctx, b.client, b.presenceKeys(userID)[:1]).StringSlice()
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

// Refuse records the user's token refusal for ttl; a later refusal time already recorded
// stays.
func (b *Broker) Refuse(ctx context.Context, userID string, before time.Time, ttl time.Duration) error {
	err := refuseScript.Run(ctx, b.client, b.presenceKeys(userID)[1:], before.UnixMilli(), max(ttl.Milliseconds(), 1)).Err()
	if err != nil {
		return fmt.Errorf("redisbroker: refuse tokens: %w", err)
	}
	return nil
}

// RefusedBefore reads the user's token refusal.
func (b *Broker) RefusedBefore(ctx context.Context, userID string) (time.Time, error) {
	v, err := b.client.Get(ctx, b.presenceKeys(userID)[1]).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("redisbroker: read token refusal: %w", err)
	}
	return parseRefusal(v)
}

// keepPresence refreshes this node's entries every PresenceTTL/3 until the broker closes.
func (b *Broker) keepPresence() {
	defer close(b.pres.done)
	t := time.NewTicker(b.opts.PresenceTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			if err := b.refreshPresence(); err != nil {
				b.opts.Logger.Warn("notify: redisbroker: presence upkeep failed", "err", err)
			}
		}
	}
}

// keepChunk bounds the script calls of one pipeline of the upkeep.
const keepChunk = 500

// refreshPresence refreshes every entry of this node, one script call per user.
func (b *Broker) refreshPresence() error {
	b.pres.mu.Lock()
	type user struct {
		key     string
		members []any
	}
	users := make([]user, 0, len(b.pres.local))
	for k, set := range b.pres.local {
		u := user{key: k, members: make([]any, 0, len(set)+1)}
		u.members = append(u.members, b.opts.PresenceTTL.Milliseconds())
		for m := range set {
			u.members = append(u.members, m)
		}
		users = append(users, u)
	}
	b.pres.mu.Unlock()
	if len(users) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.PresenceTTL/3)
	defer cancel()
	if err := keepScript.Load(ctx, b.client).Err(); err != nil {
		return err
	}
	for len(users) > 0 {
		n := min(len(users), keepChunk)
		pipe := b.client.Pipeline()
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
