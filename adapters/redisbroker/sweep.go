package redisbroker

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sweeping dead nodes: a node killed without closing its sessions (kill -9, a lost machine)
// leaves their presence entries to expire, and nobody would report its users offline. So each
// node keeps two records, which the survivors sweep:
//
//   - the registry, "<prefix>:{nodes}", a sorted set of the nodes with the time (Redis's clock)
//     their record expires, PresenceTTL after their last upkeep; a node is registered in its
//     first join's pipeline and refreshed by every upkeep;
//   - the node's users set, "<prefix>:{n:<node>}:u<0|1|2>", the users with sessions on the
//     node, in three generations: a user's first session on the node adds the user to the
//     current generation (in the join's pipeline), and every upkeep starts a new generation
//     with every user the node has then, and drops the generation before the previous one.
//     Every user with a session on the node is in the current generation or the previous one
//     (an upkeep's copy is taken under the lock that gives joins their generation), and no
//     generation grows with the users that left.
//
// Each upkeep, after its own, claims the nodes whose record expired, in one script (one
// survivor gets each dead node: the claim moves its expiry PresenceTTL ahead, so that a
// survivor that dies while sweeping leaves it to another), reads the dead node's users, and
// for each runs expireScript, which removes the dead node's entries (and expired ones) from the
// user's set and says whether that left it empty: the user went offline, and this survivor
// reports it. A user still online on another node is not reported; a user whose set another
// script emptied meanwhile (a leave, a join pruning the expired entries) was reported by that
// script's node. Then the dead node's records go.
//
// A node that was not dead, only cut off from Redis for longer than PresenceTTL, has its users
// reported offline; its next upkeep writes its sessions back into presence (and its record),
// without reporting them online again.
//
// The cost: per upkeep per node, one registry script, one DEL and one SADD (per 500 users) of
// the users set; per join on a cluster, a second script call in the join's pipeline for a
// user's first session on the node (on a single Redis, the join's script writes it); per dead
// node, one read and one pipelined script call per user it had.

// maxClaims bounds the dead nodes one upkeep sweeps.
const maxClaims = 8

// registry is the sorted set of the nodes and the expiry of their records.
func (n names) registry() string { return n.prefix + ":{nodes}" }

// nodeUsers is the users set of a node's generation gen (kept modulo 3).
func (n names) nodeUsers(node string, gen uint64) string {
	return n.prefix + ":{n:" + node + "}:u" + strconv.FormatUint(gen%3, 10)
}

// unregister removes the node's records, once its sessions have left (the broker closes):
// nobody has to sweep it. Best effort: records left behind are swept as a dead node's.
func (p *presence) unregister() {
	p.mu.Lock()
	node := p.node
	p.mu.Unlock()
	if node == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = p.client.Del(ctx, p.names.nodeUsers(node, 0), p.names.nodeUsers(node, 1), p.names.nodeUsers(node, 2)).Err()
	_ = p.client.ZRem(ctx, p.names.registry(), node).Err()
}

// sweep claims the dead nodes and reports, once each, the users that their death took offline.
func (p *presence) sweep() error {
	ctx, cancel := context.WithTimeout(context.Background(), p.ttl/3)
	defer cancel()
	dead, err := claimScript.Run(ctx, p.client, []string{p.names.registry()}, p.ttl.Milliseconds(), maxClaims).StringSlice()
	if err != nil {
		return err
	}
	var errs []error
	for _, node := range dead {
		errs = append(errs, p.sweepNode(ctx, node))
	}
	return errors.Join(errs...)
}

// sweepNode removes a dead node's entries from its users' presence sets, reports the users it
// left without any, and deletes the node's records.
func (p *presence) sweepNode(ctx context.Context, node string) error {
	gens := []string{p.names.nodeUsers(node, 0), p.names.nodeUsers(node, 1), p.names.nodeUsers(node, 2)}
	users, err := p.client.SUnion(ctx, gens...).Result()
	if err != nil {
		return err
	}
	if err := expireScript.Load(ctx, p.client).Err(); err != nil {
		return err
	}
	for len(users) > 0 {
		n := min(len(users), keepChunk)
		pipe := p.client.Pipeline()
		cmds := make([]*redis.Cmd, n)
		for i, u := range users[:n] {
			cmds[i] = expireScript.EvalSha(ctx, pipe, []string{p.names.presenceKeys(u)[0]}, node)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err // the claim lapses: this node or another sweeps the rest later
		}
		for i, u := range users[:n] {
			if v, _ := cmds[i].Int(); v == 1 {
				p.wentOffline(u)
			}
		}
		users = users[n:]
	}
	if err := p.client.Del(ctx, gens...).Err(); err != nil {
		return err
	}
	return p.client.ZRem(ctx, p.names.registry(), node).Err()
}

// KEYS: registry. ARGV: node, ttl ms. Records the node as alive for ttl. (Its reply is an
// array, as the reader's calls want.)
var registerScript = combinable(nowLua + `
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return {1}
`)

// KEYS: registry. ARGV: ttl ms, most claims. Returns the nodes whose record expired, each
// claimed for ttl.
var claimScript = redis.NewScript(nowLua + `
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, d in ipairs(dead) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), d)
end
return dead
`)

// KEYS: the node's users set (on Redis Cluster, where it is not in the join's slot). ARGV:
// user, ttl ms.
var nodeUserScript = redis.NewScript(`
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1}
`)

// KEYS: presence. ARGV: dead node. Removes the node's entries and the expired ones; returns
// 1 when that left the set empty.
var expireScript = redis.NewScript(nowLua + `
local before = redis.call('ZCARD', KEYS[1])
if before == 0 then
  return 0
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local mark = ' ' .. ARGV[1] .. ' '
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.find(m, mark, 1, true) then
    redis.call('ZREM', KEYS[1], m)
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 then
  return 1
end
return 0
`)
