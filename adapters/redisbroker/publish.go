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
)

// Publishing: every Publish hands its send to one of the publisher's goroutines and waits for
// the answer. That goroutine takes every send waiting at that moment (up to maxPipeline) and
// sends them in one pipeline, one round trip; sends that arrive meanwhile wait for the next. A
// lone send leaves at once: nothing waits for company. Each send is still one script, so a
// stream's offset, history and publish stay atomic, and a pipeline keeps the order of the
// sends in it. The script's reply is the event's position and PUBLISH's (SPUBLISH's) count of
// the nodes subscribed to the stream; an ephemeral send's PUBLISH gives the count alone.

// maxPipeline bounds the sends in one round trip, and the sends queued for the next.
const maxPipeline = 256

// pipelines returns how many pipelines of sends (or of reads) may be in flight at once. On a
// single Redis one: while it waits for Redis, the calls that arrive queue for the next, which
// carries them all in one script call, and fewer, larger calls cost Redis and this node less
// per send than more pipelines in flight (with 32 concurrent senders, about 16 sends per call
// where 4 pipelines made 6: Redis's read events per send went from 0.17 to 0.06,
// bench/README.md). A pipeline's round trip bounds what a send waits for the one before it.
// On Redis Cluster, where each send is a script call of its own and a pipeline waits for its
// slowest shard, inFlight: a shard that is slow to answer holds up that many pipelines' worth
// of sends to the others. Sends of one caller stay in order (each waits for its answer);
// concurrent callers' sends had no order to keep.
func pipelines(cluster *redis.ClusterClient, inFlight int) int {
	if cluster == nil {
		return 1
	}
	return inFlight
}

// clusterPublishers and clusterReaders are the pipelines of sends and of reads in flight at
// once on Redis Cluster (see pipelines).
const (
	clusterPublishers = 4
	clusterReaders    = 2
)

// publishTimeout bounds one pipeline's round trip.
const publishTimeout = 5 * time.Second

// A publisher sends the hub's publishes, pipelined. It has no lock: its fields are set by New
// and only read afterwards, a send reaches its goroutines through q, and the answer comes back
// through the send's own done channel.
type publisher struct {
	client      redis.UniversalClient
	cluster     *redis.ClusterClient // set on Redis Cluster: reloaded after a failed batch
	names       names
	script      *redis.Script // publishScript, or shardedPublishScript on a cluster
	historySize int
	historyTTL  time.Duration
	// waitReplicas, when not 0, is how many replicas each pipeline's WAIT asks for, within
	// waitTimeout.
	waitReplicas int
	waitTimeout  time.Duration

	q    chan *pubReq    // sends waiting for a pipeline
	stop <-chan struct{} // the broker's
	wg   sync.WaitGroup  // the publishing goroutines
}

func newPublisher(client redis.UniversalClient, cluster *redis.ClusterClient, n names, size int, ttl time.Duration, stop <-chan struct{}) *publisher {
	p := &publisher{client: client, cluster: cluster, names: n, script: publishScript,
		historySize: size, historyTTL: ttl, q: make(chan *pubReq, maxPipeline), stop: stop}
	if cluster != nil {
		p.script = shardedPublishScript
	}
	return p
}

// pubReq is one send waiting for a pipeline.
type pubReq struct {
	stream    string
	payload   []byte // a copy: the hub reuses its memory once Publish returns
	ephemeral bool
	done      chan pubAns // capacity 1: the publisher's answer
}

// pubAns is Redis's answer to a send: the event's position (zero for an ephemeral one) and how
// many nodes are subscribed to its stream.
type pubAns struct {
	pos   notify.Position
	nodes int
	err   error
}

var pubReqs = sync.Pool{New: func() any { return &pubReq{done: make(chan pubAns, 1)} }}

var (
	errClosed     = errors.New("broker closed")
	errUnexpected = errors.New("unexpected reply")
)

func (p *publisher) start() {
	n := pipelines(p.cluster, clusterPublishers)
	p.wg.Add(n)
	for range n {
		go p.run()
	}
}

// wait waits for the publishing goroutines, which return once the broker's stop is closed.
func (p *publisher) wait() { p.wg.Wait() }

// publish hands the send to a pipeline and waits for Redis's answer: the event's position
// (zero for an ephemeral event) and the number of nodes subscribed to the stream, which
// received it.
func (p *publisher) publish(ctx context.Context, stream string, payload []byte, ephemeral bool) (pos notify.Position, nodes int, err error) {
	r := pubReqs.Get().(*pubReq)
	r.stream, r.ephemeral = stream, ephemeral
	r.payload = append(r.payload[:0], payload...)
	select {
	case p.q <- r:
	case <-ctx.Done():
		pubReqs.Put(r)
		return notify.Position{}, 0, fmt.Errorf("redisbroker: publish: %w", ctx.Err())
	case <-p.stop:
		pubReqs.Put(r)
		return notify.Position{}, 0, fmt.Errorf("redisbroker: publish: %w", errClosed)
	}
	select {
	case a := <-r.done:
		pubReqs.Put(r)
		if a.err != nil {
			return notify.Position{}, 0, fmt.Errorf("redisbroker: publish: %w", a.err)
		}
		return a.pos, a.nodes, nil
	case <-ctx.Done():
		// The publisher still answers into r.done; r is left to the collector.
		return notify.Position{}, 0, fmt.Errorf("redisbroker: publish: %w", ctx.Err())
	}
}

// run sends the queued sends, pipelined, until the broker closes; then it answers what is
// still queued with errClosed.
func (p *publisher) run() {
	defer p.wg.Done()
	drain(p.stop, p.q, p.publishBatch, func(r *pubReq) { r.done <- pubAns{err: errClosed} })
}

// drain runs q's items in batches until stop closes: it waits for one, takes the others
// waiting at that moment (up to maxPipeline) and hands them to run, which answers them; items
// queued meanwhile wait for the next batch. Once stop closes, fail answers what is still
// queued. The publisher's and the reader's (history.go) goroutines are drains.
func drain[T any](stop <-chan struct{}, q chan T, run func([]T), fail func(T)) {
	batch := make([]T, 0, maxPipeline)
	for {
		select {
		case <-stop:
			for {
				select {
				case r := <-q:
					fail(r)
				default:
					return
				}
			}
		case r := <-q:
			batch = append(batch[:0], r)
		}
	fill:
		for len(batch) < maxPipeline {
			select {
			case r := <-q:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		run(batch)
		clear(batch)
	}
}

// publishBatch sends a batch in one pipeline and answers each send. A Redis that does not know
// the script yet (it restarted, or the batch is the first) gets it loaded and the sends that
// failed for it again.
func (p *publisher) publishBatch(batch []*pubReq) {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	cmds, wait := p.pipeline(ctx, batch, false)
	redoNoScript(cmds, func() { _ = p.script.Load(ctx, p.client).Err() }, func(redo []int, eval bool) {
		cmdsAgain, waitAgain := p.pipeline(ctx, pick(batch, redo), eval)
		for k, i := range redo {
			cmds[i] = cmdsAgain[k]
		}
		if waitAgain != nil {
			wait = waitAgain
		}
	})
	var unreplicated error // the sends' writes reached fewer replicas than asked
	if wait != nil {
		if n, err := wait.Int64(); err != nil {
			unreplicated = fmt.Errorf("%w: WAIT: %w", ErrNotReplicated, err)
		} else if int(n) < p.waitReplicas {
			unreplicated = fmt.Errorf("%w: %d of %d within %v", ErrNotReplicated, n, p.waitReplicas, p.waitTimeout)
		}
	}
	failed := false
	part := map[redis.Cmder]int{} // the sends of each call answered so far
	for i, r := range batch {
		a := answer(cmds[i], r.ephemeral, part[cmds[i]])
		part[cmds[i]]++
		failed = failed || a.err != nil
		if a.err == nil && !r.ephemeral && unreplicated != nil {
			a = pubAns{err: unreplicated}
		}
		r.done <- a
	}
	if failed && p.cluster != nil {
		// go-redis reloads the cluster's layout on MOVED, or every few seconds: a master that
		// went away (a failover) would fail sends until then.
		p.cluster.ReloadState(ctx)
	}
}

// pipeline sends the batch, and with waitReplicas set a WAIT after it when the batch wrote. On
// a single Redis the batch's durable sends go in one call of the publish script, which serves
// them in turn (cmds holds that call for each of them: answers reads each one's part); on a
// cluster, where one call's keys share a slot, each send is a call of its own.
func (p *publisher) pipeline(ctx context.Context, batch []*pubReq, eval bool) ([]redis.Cmder, *redis.Cmd) {
	pipe := p.client.Pipeline()
	cmds := make([]redis.Cmder, len(batch))
	now := time.Now().UnixMilli()
	// head returns a call's first keys and arguments, before its sends'.
	head := func() ([]string, []any) {
		var keys []string
		if p.cluster == nil && p.names.marker {
			keys = []string{p.names.markerKey()}
		}
		return keys, []any{p.historySize, p.historyTTL.Milliseconds(), int64(notify.StreamRetention / time.Second),
			now, notify.NewEpoch(), renewEvery(p.historyTTL).Milliseconds(), len(keys)}
	}
	var keys []string // the single Redis's one call: its keys, arguments and sends
	var args []any
	var durable []int
	for i, r := range batch {
		channel := p.names.channel(r.stream)
		switch {
		case r.ephemeral && p.cluster != nil:
			cmds[i] = pipe.SPublish(ctx, channel, "0 - "+string(r.payload))
		case r.ephemeral:
			cmds[i] = pipe.Publish(ctx, channel, "0 - "+string(r.payload))
		case p.cluster != nil:
			k, a := head()
			cmds[i] = run(ctx, pipe, p.script, eval, append(k, p.names.keys(r.stream)...), append(a, channel, r.payload)...)
		default:
			if durable == nil {
				keys, args = head()
			}
			keys = append(keys, p.names.keys(r.stream)...)
			args = append(args, channel, r.payload)
			durable = append(durable, i)
		}
	}
	if durable != nil {
		call := run(ctx, pipe, p.script, eval, keys, args...)
		for _, i := range durable {
			cmds[i] = call
		}
	}
	var wait *redis.Cmd
	if p.waitReplicas > 0 && slices.ContainsFunc(batch, func(r *pubReq) bool { return !r.ephemeral }) {
		wait = pipe.Do(ctx, "WAIT", p.waitReplicas, p.waitTimeout.Milliseconds())
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	return cmds, wait
}

// renewEvery is how often a busy stream's keys get their TTLs renewed: the publish script
// renews them on a stream's first event and then when this long has passed since the last
// renewal, not on every event, with this much added to each TTL so that nothing expires
// sooner than the TTL after the stream's last event (the history may live this much longer).
func renewEvery(historyTTL time.Duration) time.Duration {
	return max(historyTTL/10, time.Second)
}

// answer reads a send's reply: PUBLISH's count for an ephemeral send, and its part of the
// publish script's reply for the others: a string "<offset> <epoch> <receivers>" for each
// send of the call, in turn (k counts the sends of c read so far), or "-1 <error>" for a send
// that failed in it. One string per send, rather than three values, is one allocation where
// go-redis made three.
func answer(c redis.Cmder, ephemeral bool, k int) pubAns {
	if ephemeral {
		n, err := c.(*redis.IntCmd).Result()
		return pubAns{nodes: int(n), err: err}
	}
	res, err := c.(*redis.Cmd).Slice()
	if err != nil {
		return pubAns{err: err}
	}
	if len(res) <= k {
		return pubAns{err: errUnexpected}
	}
	s, _ := res[k].(string)
	off, rest, ok := strings.Cut(s, " ")
	if ok && off == "-1" {
		return pubAns{err: errors.New(rest)}
	}
	epoch, recv, ok2 := strings.Cut(rest, " ")
	offset, err1 := strconv.ParseUint(off, 10, 64)
	receivers, err2 := strconv.Atoi(recv)
	if !ok || !ok2 || err1 != nil || err2 != nil || epoch == "" {
		return pubAns{err: errUnexpected}
	}
	return pubAns{pos: notify.Position{Offset: offset, Epoch: epoch}, nodes: receivers}
}

// redoNoScript sends again the calls of a batch that Redis refused with NOSCRIPT, which did
// nothing (a Redis that restarted, or the batch is the first): first by digest once load has
// loaded the scripts, then, for those refused again, by their source, in case loading did not
// reach the master that refused them (see run). resend sends the batch's calls at the indexes
// redo gives (by source with eval) and puts their commands in cmds; the other calls are not
// sent twice.
func redoNoScript(cmds []redis.Cmder, load func(), resend func(redo []int, eval bool)) {
	for _, eval := range []bool{false, true} {
		var redo []int
		for i, c := range cmds {
			if isNoScript(c.Err()) {
				redo = append(redo, i)
			}
		}
		if len(redo) == 0 {
			return
		}
		if !eval {
			load()
		}
		resend(redo, eval)
	}
}

// pick returns the items of batch at the indexes idx.
func pick[T any](batch []T, idx []int) []T {
	out := make([]T, len(idx))
	for k, i := range idx {
		out[k] = batch[i]
	}
	return out
}

func isNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }

// publishScript serves a batch of sends, each atomically: it assigns the stream's next
// offset, appends the event to the history and publishes it, and returns for each
// "<offset> <epoch> <receivers>" (PUBLISH's count of the nodes subscribed to the stream), or
// "-1 <error>" for a send that failed. shardedPublishScript is the same with SPUBLISH and the
// node's ID, for Redis Cluster, where the channel is in the keys' slot (see names.channel)
// and a call serves one send. Both start a new epoch for a stream whose epoch was minted on
// another server (failover.go).
//
// Redis's CPU per send is the script's calls: four for most sends (HMGET, HINCRBY, RPUSH,
// PUBLISH). The history is trimmed only once it holds more than its size, and the keys' TTLs
// are renewed on a stream's first event and then every renewEvery, recorded in the position's
// "renew" field (Redis's own clock, read once per call), not by an EXPIRE per send.
//
// KEYS: on a single Redis the marker when there is one, then each send's position and history.
// ARGV: size, history ttl ms, position ttl s, now ms (the entries' time, the node's clock),
// new epoch, renewal period ms, how many keys precede the sends', then each send's channel and
// payload.
var (
	publishScript        = redis.NewScript(strings.Replace(publishLua, sidPlaceholder, batchSingleSID, 1))
	shardedPublishScript = redis.NewScript(strings.Replace(strings.Replace(publishLua, "'PUBLISH'", "'SPUBLISH'", 1), sidPlaceholder, clusterSID, 1))
)

// batchSingleSID reads the single Redis's marker, the publish script's first key when there is
// one (false, no check, when not).
const batchSingleSID = "(ARGV[7] == '1' and redis.call('GET', KEYS[1]))"

const publishLua = `
local sid = ` + sidPlaceholder + `
local size, httl, pttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now, newEpoch, period, k0 = ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local t = redis.call('TIME')
local clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function one(kp, kh, channel, payload)
  local pos = redis.call('HMGET', kp, 'epoch', 'sid', 'renew')
  local epoch = pos[1]
  local reset = not epoch or (sid and pos[2] and pos[2] ~= sid)
  if reset then
    epoch = newEpoch
    if sid then
      redis.call('HSET', kp, 'epoch', epoch, 'offset', 0, 'sid', sid)
    else
      redis.call('HSET', kp, 'epoch', epoch, 'offset', 0)
    end
    redis.call('DEL', kh)
  elseif sid and not pos[2] then
    redis.call('HSET', kp, 'sid', sid)
  end
  local offset = redis.call('HINCRBY', kp, 'offset', 1)
  local len = redis.call('RPUSH', kh, offset .. ' ' .. now .. ' ' .. payload)
  if len > size then
    redis.call('LTRIM', kh, -size, -1)
  end
  if reset or len == 1 or not pos[3] or clock >= tonumber(pos[3]) then
    redis.call('HSET', kp, 'renew', clock + period)
    redis.call('EXPIRE', kp, pttl + math.ceil(period / 1000))
    redis.call('PEXPIRE', kh, httl + period)
  end
  local head = offset .. ' ' .. epoch
  local receivers = redis.call('PUBLISH', channel, head .. ' ' .. payload)
  return head .. ' ' .. receivers
end
local out = {}
for i = 1, (#ARGV - 7) / 2 do
  local ok, r = pcall(one, KEYS[k0 + 2 * i - 1], KEYS[k0 + 2 * i], ARGV[6 + 2 * i], ARGV[7 + 2 * i])
  if not ok then
    r = '-1 ' .. (type(r) == 'table' and r.err or tostring(r))
  end
  out[i] = r
end
return out
`
