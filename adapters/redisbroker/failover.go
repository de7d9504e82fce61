package redisbroker

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Failover: a replica promoted without a stream's last events would hand their offsets out
// again in the same epoch, and a client that received a lost event would take the event
// that reuses its offset for a duplicate. So each stream's position records the Redis server
// its epoch lives on ("sid"), and the publish and history scripts start a new epoch for a
// stream whose recorded server is not the one running them: its clients are told
// recovered:false (a recovery finds another epoch; a live event of the new epoch tells a
// connected client the same), never a reused offset. The cost is one field read per script.
//
// The server's identity, as the scripts read it:
//   - on Redis Cluster, the node's ID (CLUSTER MYID): a promoted replica is another node, and
//     so is the master a resharding moves a slot to (its streams start a new epoch too,
//     though their history moved along);
//   - on a single Redis (behind Sentinel, or not) reached through a *redis.Client, its
//     replication ID (INFO replication master_replid), which a promotion changes, as does a
//     restart (Redis 7.0 gives a master a new one when it starts, even from its saved data,
//     which may lack the last writes). INFO costs too much for every script (about 3 µs of
//     Redis CPU), so the broker reads it once per connection instead: New adds a hook to
//     the client's OnConnect that copies it into the marker key "<prefix>:sid" before the
//     connection's first command, and the scripts read the marker. A failover moves every
//     client to new connections to the new master, so the marker there is that master's ID
//     before any script runs on it; Start copies it once for the connections opened before.
//   - with another client (a *redis.Ring, say), none: no script checks.
//
// A stream whose position predates the field adopts the server that runs it, without a new
// epoch.

// guardScript copies a master's replication ID into the marker key, when it differs; a
// replica's connection is left alone (writes go to the master). KEYS: marker.
var guardScript = redis.NewScript(`
local info = redis.call('INFO', 'replication')
if not string.find(info, 'role:master', 1, true) then
  return 0
end
local id = string.match(info, 'master_replid:(%w+)')
if id and redis.call('GET', KEYS[1]) ~= id then
  redis.call('SET', KEYS[1], id)
end
return 1
`)

// guardConnections makes every new connection of client copy its server's replication ID
// into the marker before its first command, after the client's own OnConnect. A connection
// whose copy fails is not used: go-redis dials another.
func guardConnections(client *redis.Client, marker string) {
	o := client.Options()
	prev := o.OnConnect
	o.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
		if prev != nil {
			if err := prev(ctx, cn); err != nil {
				return err
			}
		}
		return guardScript.Run(ctx, cn, []string{marker}).Err()
	}
}

// markerKey is the single Redis's marker of its replication ID.
func (n names) markerKey() string { return n.prefix + ":sid" }

// Where the scripts read the server's identity: on a cluster, CLUSTER MYID; on a single
// Redis, the marker, the key in the script's local kmarker when it has one (false, no check,
// when not).
const (
	sidPlaceholder = "SERVER_ID"
	clusterSID     = "redis.call('CLUSTER', 'MYID')"
	singleSID      = "(kmarker and redis.call('GET', kmarker))"
)

// withSID makes the script's variant for a single Redis and for a cluster.
func withSID(lua string) (single, cluster string) {
	return strings.Replace(lua, sidPlaceholder, singleSID, 1), strings.Replace(lua, sidPlaceholder, clusterSID, 1)
}

// scriptKeys returns a stream's keys for the history script: the position and
// the history, then the marker when the broker keeps one.
func (n names) scriptKeys(stream string) []string {
	k := n.keys(stream)
	if n.marker {
		k = append(k, n.markerKey())
	}
	return k
}

// positionLua reads a stream's position into the locals epoch and offset (a string), and
// starts a new epoch for a stream that has none, or whose epoch was minted on another server (a
// failover): its offset is 0, the old epoch's history is dropped and a position that did not
// exist lives for pos_ttl seconds only (its first event extends it). A stream without a
// position has no history to drop: its history expires before its position (publishLua),
// and were an evicted position to leave one behind, a read in the new epoch takes only the
// list's newest (offset - after) entries, which are the new epoch's. A stream whose position
// predates the server field adopts the server that runs it, without a new epoch. It needs the
// locals kpos and khist (the stream's keys), kmarker (the marker, or nil), new_epoch and
// pos_ttl; the history and join scripts run it.
const positionLua = `
local sid = ` + sidPlaceholder + `
local pos = redis.call('HMGET', kpos, 'epoch', 'sid', 'offset')
local epoch, offset = pos[1], pos[3] or '0'
if not epoch or (sid and pos[2] and pos[2] ~= sid) then
  epoch, offset = new_epoch, '0'
  if sid then
    redis.call('HSET', kpos, 'epoch', epoch, 'offset', 0, 'sid', sid)
  else
    redis.call('HSET', kpos, 'epoch', epoch, 'offset', 0)
  end
  if not pos[1] then
    redis.call('EXPIRE', kpos, pos_ttl)
  else
    redis.call('DEL', khist)
  end
elseif sid and not pos[2] then
  redis.call('HSET', kpos, 'sid', sid)
end
`
