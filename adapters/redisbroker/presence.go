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
	"sync/atomic"
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
// A user goes offline when its set goes from some entries to none, in one script: a leave,
// a join or leave that prunes expired entries, or the sweep of a dead node (sweep.go). The
// node whose script saw it reports it, so each going offline is reported once in the
// cluster. The set itself expires 3 PresenceTTLs after its last write, long after its entries,
// so that a survivor's sweep finds a dead node's entries still there.
//
// A connect costs one round trip (joinScript: the entry added and the refusal read, and the
// user stream's position when the node has none, joinPositionScript; on Redis Cluster a
// second script call in the same pipeline records the user in the node's users set
// when it is the user's first session on the node), a disconnect one (leaveScript), and the
// upkeep one pipelined round trip per PresenceTTL/3 per node, one script call in it per user
// with sessions on the node, plus the node's users set and the registry (sweep.go).

// DefaultPresenceTTL is the default of Config.PresenceTTL.
const DefaultPresenceTTL = 30 * time.Second

// presence keeps the sessions of this node in the users' presence sets, reads and writes the
// users' token refusals, and reports the users whose sessions expired (sweep.go). mu guards
// node, gen and local, and nothing else; offline is set once, before the hub's first join,
// and read atomically; the keeper goroutine, started by start, returns once the broker's stop
// is closed.
type presence struct {
	client  redis.UniversalClient
	cluster bool
	reads   *reader     // joins and leaves go through its pipelines
	sub     *subscriber // whose live channels a join reads the position of
	names   names
	ttl     time.Duration
	log     *slog.Logger
	stop    <-chan struct{} // the broker's
	done    chan struct{}   // closed when the keeper has returned
	offline atomic.Pointer[func(userID string)]

	mu    sync.Mutex
	node  string                         // the hub's node ID, from its first join: "" before
	gen   uint64                         // the generation of the node's users set (sweep.go)
	local map[string]map[string]struct{} // user -> members of this node's sessions
}

func newPresence(client redis.UniversalClient, reads *reader, sub *subscriber, n names, ttl time.Duration, log *slog.Logger, stop <-chan struct{}) *presence {
	return &presence{client: client, cluster: n.cluster, reads: reads, sub: sub, names: n, ttl: ttl, log: log, stop: stop,
		done: make(chan struct{}), local: map[string]map[string]struct{}{}}
}

func (p *presence) start() { go p.keep() }

// wait waits for the keeper, which returns once the broker's stop is closed.
func (p *presence) wait() { <-p.done }

// keyTTL is how long a presence set outlives its last write: 3 PresenceTTLs (see above).
func (p *presence) keyTTL() int64 { return 3 * p.ttl.Milliseconds() }

// wentOffline reports a user whose last sessions expired, if the hub asked for it.
func (p *presence) wentOffline(user string) {
	if f := p.offline.Load(); f != nil {
		(*f)(user)
	}
}

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

// joinLua adds a session's entry to its user's presence set, pruning the expired ones, and
// reads the user's token refusal. It needs the locals kpres, knbf, kusers (the node's users
// set, see sweep.go, or nil), member, entry_ttl (ms), key_ttl (ms), user and users_ttl (ms),
// and sets n (the user's sessions after the add), refusal ("" for none) and expired (1 when
// the entries it pruned were the user's last: the user went offline by expiry, which the
// caller reports).
const joinLua = nowLua + `
local removed = redis.call('ZREMRANGEBYSCORE', kpres, '-inf', now)
local added = redis.call('ZADD', kpres, now + tonumber(entry_ttl), member)
local n = redis.call('ZCARD', kpres)
local expired = 0
if removed > 0 and added == 1 and n == 1 then
  expired = 1
end
redis.call('PEXPIRE', kpres, key_ttl)
if kusers then
  redis.call('SADD', kusers, user)
  redis.call('PEXPIRE', kusers, users_ttl)
end
local refusal = redis.call('GET', knbf) or ''
`

// joinScript joins a session to presence. KEYS: presence, refusal, and on a single Redis the
// node's users set when the session is its user's first on the node. ARGV: member, entry ttl
// ms, key ttl ms, user, users set ttl ms. Returns {sessions, refusal, expired}.
var joinScript = combinable(`
local kpres, knbf, kusers = KEYS[1], KEYS[2], KEYS[3]
local member, entry_ttl, key_ttl, user, users_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
` + joinLua + `
return {n, refusal, expired}
`)

// joinPositionScript is joinScript that reads the user stream's position in the same step
// (positionLua), for a session whose node has the stream's channel subscribed already: every
// event after that position reaches the node, which then answers the session's History
// without Redis (see subscriber.localPosition). shardedJoinPositionScript is its variant for
// Redis Cluster, where the user's presence and stream share a slot. KEYS: presence, refusal,
// the stream's position and history, then the marker when ARGV[8] is "1" and the node's users
// set when ARGV[9] is "1". ARGV: as joinScript's, then the new epoch and the position's ttl s
// (see historyScript), and the two flags. Returns {sessions, refusal, expired, epoch, offset}.
var joinPositionScript, shardedJoinPositionScript = joinPositionScripts()

func joinPositionScripts() (single, cluster *redis.Script) {
	s, c := withSID(`
local kpres, knbf, kpos, khist = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local kmarker, kusers
local k = 5
if ARGV[8] == '1' then
  kmarker = KEYS[k]
  k = k + 1
end
if ARGV[9] == '1' then
  kusers = KEYS[k]
end
local member, entry_ttl, key_ttl, user, users_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local new_epoch, pos_ttl = ARGV[6], ARGV[7]
` + joinLua + positionLua + `
return {n, refusal, expired, epoch, offset}
`)
	return combinable(s), redis.NewScript(c)
}

// KEYS: presence. ARGV: member. Returns the sessions after the removal, 1 if it removed the
// member, and 1 when it did not but the expired entries it pruned were the user's last.
var leaveScript = combinable(nowLua + `
local before = redis.call('ZCARD', KEYS[1])
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
local expired = 0
if removed == 0 and before > 0 and n == 0 then
  expired = 1
end
return {n, removed, expired}
`)

// KEYS: presence. Returns the live members.
var sessionsScript = redis.NewScript(nowLua + `
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
`)

// KEYS: presence. ARGV: entry ttl ms, key ttl ms, members... Refreshes the members' entries.
var keepScript = redis.NewScript(nowLua + `
local exp = now + tonumber(ARGV[1])
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], exp, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return #ARGV - 2
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
// round trip. The node keeps the entry alive until leave. The node's records (sweep.go) go
// in the same pipeline: its first join registers it, and a user's first session on the node
// records the user in the node's users set. Their failure does not fail the join (on Redis
// Cluster they may be on a shard that is down while the user's is up): the node's next
// upkeep writes them again, and until then a death of the node would go unreported.
func (p *presence) join(ctx context.Context, s notify.SessionInfo) (int, time.Time, error) {
	keys, m := p.names.presenceKeys(s.UserID), member(s)
	p.mu.Lock()
	first := p.node == ""
	if first {
		p.node = s.Node
	}
	set := p.local[s.UserID]
	var users string // the node's users set, when the user is new on the node
	if set == nil {
		set = map[string]struct{}{}
		p.local[s.UserID] = set
		users = p.names.nodeUsers(p.node, p.gen)
	}
	set[m] = struct{}{}
	p.mu.Unlock()
	var records []*callReq
	if first {
		if r, err := p.reads.send(ctx, registerScript, []string{p.names.registry()}, s.Node, p.ttl.Milliseconds()); err == nil {
			records = append(records, r)
		}
	}
	if users != "" && p.cluster {
		if r, err := p.reads.send(ctx, nodeUserScript, []string{users}, s.UserID, p.keyTTL()); err == nil {
			records = append(records, r)
		}
		users = ""
	}
	script, args := joinScript, []any{m, p.ttl.Milliseconds(), p.keyTTL(), s.UserID, p.keyTTL()}
	stream := notify.UserStream(s.UserID)
	withPosition := p.sub.unpositioned(stream)
	if withPosition {
		script = joinPositionScript
		if p.cluster {
			script = shardedJoinPositionScript
		}
		keys = append(keys, p.names.keys(stream)...)
		marker, withUsers := "0", "0"
		if p.names.marker {
			keys, marker = append(keys, p.names.markerKey()), "1"
		}
		if users != "" {
			keys, withUsers = append(keys, users), "1"
		}
		args = append(args, notify.NewEpoch(), p.reads.positionTTL(), marker, withUsers)
	} else if users != "" {
		keys = append(keys, users)
	}
	res, err := p.reads.call(ctx, script, keys, args...)
	for _, r := range records {
		if _, rerr := p.reads.await(ctx, r); rerr != nil {
			p.log.Debug("notify: redisbroker: the node's records were not written", "err", rerr)
		}
	}
	if err != nil {
		p.forget(s.UserID, m)
		return 0, time.Time{}, fmt.Errorf("redisbroker: presence join: %w", err)
	}
	if withPosition && len(res) == 5 {
		if pos, perr := scriptPosition(res[3], res[4]); perr == nil && pos.Epoch != "" {
			p.sub.positioned(stream, pos)
		}
		res = res[:3]
	}
	if len(res) != 3 {
		p.forget(s.UserID, m)
		return 0, time.Time{}, errors.New("redisbroker: presence join: unexpected reply")
	}
	n, _ := res[0].(int64)
	before, err := parseRefusal(res[1])
	if err != nil {
		p.forget(s.UserID, m)
		return 0, time.Time{}, err
	}
	if expired, _ := res[2].(int64); expired == 1 {
		p.wentOffline(s.UserID) // before the hub reports the user online again
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
func (p *presence) forget(user, m string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if set := p.local[user]; set != nil {
		delete(set, m)
		if len(set) == 0 {
			delete(p.local, user)
		}
	}
}

// leave removes the session from the user's presence set. When the session's entry was gone
// already (it expired) but the leave pruned the user's last expired entries, the user went
// offline here without the hub knowing: leave reports it.
func (p *presence) leave(ctx context.Context, s notify.SessionInfo) (int, bool, error) {
	keys, m := p.names.presenceKeys(s.UserID), member(s)
	p.forget(s.UserID, m)
	res, err := p.reads.call(ctx, leaveScript, keys[:1], m)
	if err != nil {
		return 0, false, fmt.Errorf("redisbroker: presence leave: %w", err)
	}
	if len(res) != 3 {
		return 0, false, errors.New("redisbroker: presence leave: unexpected reply")
	}
	n, _ := res[0].(int64)
	removed, _ := res[1].(int64)
	if expired, _ := res[2].(int64); expired == 1 {
		p.wentOffline(s.UserID)
	}
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

// keep refreshes this node's entries every PresenceTTL/3 and sweeps the dead nodes, until
// the broker closes.
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
			if err := p.sweep(); err != nil {
				p.log.Warn("notify: redisbroker: sweep of dead nodes failed", "err", err)
			}
		}
	}
}

// keepChunk bounds the script calls of one pipeline of the upkeep, and the users of one SADD.
const keepChunk = 500

// refresh refreshes every entry of this node, one script call per user, rewrites the node's
// users set in its next generation and refreshes the node's record in the registry.
func (p *presence) refresh() error {
	p.mu.Lock()
	type user struct {
		id      string
		members []any
	}
	users := make([]user, 0, len(p.local))
	for id, set := range p.local {
		u := user{id: id, members: make([]any, 0, len(set)+2)}
		u.members = append(u.members, p.ttl.Milliseconds(), p.keyTTL())
		for m := range set {
			u.members = append(u.members, m)
		}
		users = append(users, u)
	}
	node := p.node
	p.gen++
	gen := p.gen
	p.mu.Unlock()
	if node == "" {
		return nil // no session joined yet: nothing to keep, and no record
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.ttl/3)
	defer cancel()
	if err := keepScript.Load(ctx, p.client).Err(); err != nil {
		return err
	}
	// The generation's set gets every user the node has now; joins from here on add to it
	// (they read the new generation), and the set of two generations ago goes: see sweep.go.
	cur := p.names.nodeUsers(node, gen)
	if err := p.client.Del(ctx, p.names.nodeUsers(node, gen+1)).Err(); err != nil {
		return err
	}
	for len(users) > 0 {
		n := min(len(users), keepChunk)
		pipe := p.client.Pipeline()
		ids := make([]any, 0, n)
		for _, u := range users[:n] {
			keepScript.EvalSha(ctx, pipe, []string{p.names.presenceKeys(u.id)[0]}, u.members...)
			ids = append(ids, u.id)
		}
		pipe.SAdd(ctx, cur, ids...)
		pipe.PExpire(ctx, cur, time.Duration(p.keyTTL())*time.Millisecond)
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		users = users[n:]
	}
	return registerScript.Run(ctx, p.client, []string{p.names.registry()}, node, p.ttl.Milliseconds()).Err()
}
