package redisbroker

import (
	"strings"

	"github.com/redis/go-redis/v9"
)

// Failover: a replica promoted without a stream's last events would hand their offsets out
// again in the same epoch, and a client that received a lost event would take the event
// that reuses its offset for a duplicate. So each stream's position records the Redis server
// its epoch lives on ("sid"), and the publish and history scripts start a new epoch for a
// stream whose recorded server is not the one running them: its clients are told
// recovered:false (a client's recovery finds another epoch, a live event of the new epoch
// tells it the same), never a reused offset.
//
// The server's identity is read in the script, at the cost of a field read:
//   - on Redis Cluster, the node's ID (CLUSTER MYID): a promoted replica is another node, and
//     so is the master a resharding moved the slot to (its streams start a new epoch too,
//     though their history moved along);
//   - on a single Redis (behind Sentinel, or not), its replication ID (INFO replication
//     master_replid), which a promotion changes, as a restart that lost the dataset does.
//     INFO is too dear for every script (about 3 µs), so a guard script at the head of each
//     pipeline that carries a publish or a history read copies it into the marker key
//     "<prefix>:sid", which the scripts after it in that pipeline read: a pipeline runs on one
//     connection, so on one server, and a failover moves the broker to new connections, whose
//     first pipeline starts with the guard.
//
// A stream whose position predates the field adopts the server that runs it, without a new
// epoch.

// guardScript copies the server's replication ID into the marker key, when it differs.
// KEYS: marker. It runs with EVAL rather than EVALSHA: a server that does not know it (a
// promoted replica) must not skip it.
var guardScript = redis.NewScript(`
local id = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
if id and redis.call('GET', KEYS[1]) ~= id then
  redis.call('SET', KEYS[1], id)
end
return {1}
`)

// markerKey is the single Redis's marker of its replication ID.
func (n names) markerKey() string { return n.prefix + ":sid" }

// Where the scripts read the server's identity: on a cluster, CLUSTER MYID; on a single
// Redis, the marker, their third key.
const (
	sidPlaceholder = "SERVER_ID"
	clusterSID     = "redis.call('CLUSTER', 'MYID')"
	singleSID      = "redis.call('GET', KEYS[3])"
)

// withSID makes the script's variant for a single Redis and for a cluster.
func withSID(lua string) (single, cluster string) {
	return strings.Replace(lua, sidPlaceholder, singleSID, 1), strings.Replace(lua, sidPlaceholder, clusterSID, 1)
}

// scriptKeys returns a stream's keys for the publish and history scripts: on a single Redis
// the marker follows the position and the history.
func (n names) scriptKeys(stream string) []string {
	k := n.keys(stream)
	if !n.cluster {
		k = append(k, n.markerKey())
	}
	return k
}

// epochLua starts the scripts that read or write a stream's position: it reads the epoch and
// the recorded server, and sets reset when the stream has no epoch or its epoch was minted
// on another server (a failover). It then records the server, when it has one to record and
// the stream holds another. KEYS[1] is the position.
const epochLua = `
local sid = ` + sidPlaceholder + `
local pos = redis.call('HMGET', KEYS[1], 'epoch', 'sid')
local epoch = pos[1]
local reset = not epoch or (sid and pos[2] and pos[2] ~= sid)
if sid and pos[2] ~= sid then
  redis.call('HSET', KEYS[1], 'sid', sid)
end
`
