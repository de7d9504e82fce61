package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
)

// Reading positions and history, and presence: every session that connects, and every
// subscription to a topic, needs its stream's position (and, to recover, the events after the
// client's), and a connect and a disconnect write the user's presence. A connect's join reads
// the user stream's position in its own script call when the node has none for it, and a
// stream the node has live with a position is answered without Redis (Broker.History), so a
// session that asks for no recovery costs one script call. As with sends (publish.go), each
// script call is handed to one of the reader's goroutines, which takes every call waiting at
// that moment and sends them in one pipeline, one round trip, so that a burst of connects
// costs Redis (and this node) one write and one read per batch rather than several per
// session, and no connecting session's goroutine runs go-redis's call path (whose stack
// growth was a tenth of a connect's CPU time). A lone call leaves at once.

// A reader runs the script calls of History and presence, pipelined. It has no lock: its
// fields are set by New and only read afterwards, a call reaches its goroutines through q,
// and the answer comes back through the call's own done channel.
type reader struct {
	client     redis.UniversalClient
	cluster    *redis.ClusterClient // set on Redis Cluster: reloaded after a failed batch
	names      names
	historyTTL time.Duration
	log        *slog.Logger

	q    chan *callReq   // calls waiting for a pipeline
	stop <-chan struct{} // the broker's
	wg   sync.WaitGroup  // the reading goroutines
}

func newReader(client redis.UniversalClient, cluster *redis.ClusterClient, n names, ttl time.Duration, log *slog.Logger, stop <-chan struct{}) *reader {
	return &reader{client: client, cluster: cluster, names: n, historyTTL: ttl, log: log,
		q: make(chan *callReq, maxPipeline), stop: stop}
}

// callReq is one script call waiting for a reader.
type callReq struct {
	script *redis.Script
	keys   []string
	args   []any
	done   chan callAns // capacity 1: the reader's answer
}

type callAns struct {
	res []any
	err error
}

var callReqs = sync.Pool{New: func() any { return &callReq{done: make(chan callAns, 1)} }}

func (rd *reader) start() {
	n := pipelines(rd.cluster, clusterReaders) // one on a single Redis: a burst of connects shares fewer, larger calls
	rd.wg.Add(n)
	for range n {
		go rd.run()
	}
}

// wait waits for the reading goroutines, which return once the broker's stop is closed.
func (rd *reader) wait() { rd.wg.Wait() }

// call runs the script through a reader's pipeline and returns its reply, an array.
func (rd *reader) call(ctx context.Context, script *redis.Script, keys []string, args ...any) ([]any, error) {
	r, err := rd.send(ctx, script, keys, args...)
	if err != nil {
		return nil, err
	}
	return rd.await(ctx, r)
}

// send queues a script call for a reader's pipeline without waiting for its answer, which
// await then takes: calls sent one after the other, before either is awaited, usually leave
// in one pipeline.
func (rd *reader) send(ctx context.Context, script *redis.Script, keys []string, args ...any) (*callReq, error) {
	r := callReqs.Get().(*callReq)
	r.script, r.keys, r.args = script, keys, args
	var err error
	select {
	case rd.q <- r:
		return r, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-rd.stop:
		err = errClosed
	}
	r.keys, r.args = nil, nil
	callReqs.Put(r)
	return nil, err
}

// await waits for the answer to a call send queued.
func (rd *reader) await(ctx context.Context, r *callReq) ([]any, error) {
	select {
	case a := <-r.done:
		r.keys, r.args = nil, nil
		callReqs.Put(r)
		return a.res, a.err
	case <-ctx.Done():
		// The reader still answers into r.done; r is left to the collector.
		return nil, ctx.Err()
	}
}

// history reads the stream's position and, when after is of its current epoch, the events
// after it that the history holds within the TTL, in a reader's round trip.
func (rd *reader) history(ctx context.Context, stream string, after *notify.Position) (notify.Position, []notify.Message, error) {
	var since notify.Position
	if after != nil {
		since = *after
	}
	script := historyScript
	if rd.cluster != nil {
		script = shardedHistoryScript
	}
	res, err := rd.call(ctx, script, rd.names.scriptKeys(stream), notify.NewEpoch(), rd.positionTTL(), since.Epoch, since.Offset)
	if err != nil {
		return notify.Position{}, nil, fmt.Errorf("redisbroker: history: %w", err)
	}
	return rd.parseHistory(stream, res)
}

// positionTTL is the TTL in seconds of a position a read creates: the history's (see
// historyScript).
func (rd *reader) positionTTL() int64 {
	return max(1, int64((rd.historyTTL+time.Second-1)/time.Second))
}

// run sends the queued calls, pipelined, until the broker closes; then it answers what is
// still queued with errClosed.
func (rd *reader) run() {
	defer rd.wg.Done()
	drain(rd.stop, rd.q, rd.callBatch, func(r *callReq) { r.done <- callAns{err: errClosed} })
}

// callBatch runs a batch in one pipeline and answers each call; a Redis that does not know a
// script yet (it restarted, or the batch is the first) gets the batch's scripts loaded and the
// batch again.
func (rd *reader) callBatch(batch []*callReq) {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	cmds, place, scripts := rd.pipeline(ctx, batch, false)
	load := func() {
		seen := map[*redis.Script]bool{}
		for _, s := range scripts {
			if !seen[s] {
				seen[s] = true
				_ = s.Load(ctx, rd.client).Err()
			}
		}
	}
	redoNoScript(cmds, load, func(redo []int, eval bool) {
		cmdsAgain, placeAgain, _ := rd.pipeline(ctx, pick(batch, redo), eval)
		for k, i := range redo {
			cmds[i], place[i] = cmdsAgain[k], placeAgain[k]
		}
	})
	failed := false
	for i, r := range batch {
		res, err := reply(cmds[i], place[i])
		failed = failed || err != nil
		r.done <- callAns{res: res, err: err}
	}
	if failed && rd.cluster != nil {
		rd.cluster.ReloadState(ctx) // as for a send: the shard may have a new master (see publishBatch)
	}
}

func (rd *reader) pipeline(ctx context.Context, batch []*callReq, eval bool) ([]redis.Cmder, []int, []*redis.Script) {
	pipe := rd.client.Pipeline()
	cmds, place, scripts := rd.combine(ctx, pipe, batch, eval)
	_, _ = pipe.Exec(ctx) // each command carries its own error
	return cmds, place, scripts
}

// parseHistory reads historyScript's reply: the position and the entries within the TTL. A
// malformed entry is skipped and logged: the client asking for it sees a gap and is told
// recovered:false, and the stream stays usable.
func (rd *reader) parseHistory(stream string, res []any) (notify.Position, []notify.Message, error) {
	if len(res) != 3 {
		return notify.Position{}, nil, errors.New("redisbroker: history: unexpected reply")
	}
	pos, err := scriptPosition(res[0], res[1])
	if err != nil {
		return notify.Position{}, nil, fmt.Errorf("redisbroker: history: %w", err)
	}
	epoch := pos.Epoch
	entries, _ := res[2].([]any)
	cutoff := time.Now().Add(-rd.historyTTL).UnixMilli()
	var msgs []notify.Message
	if len(entries) > 0 {
		msgs = make([]notify.Message, 0, len(entries))
	}
	for _, e := range entries {
		s, _ := e.(string)
		off, rest, ok1 := strings.Cut(s, " ")
		at, payload, ok2 := strings.Cut(rest, " ")
		o, err1 := strconv.ParseUint(off, 10, 64)
		ms, err2 := strconv.ParseInt(at, 10, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || len(payload) < 2 || payload[0] != '{' {
			rd.log.Warn("notify: redisbroker: skipped a malformed history entry", "stream", stream)
			continue
		}
		if ms < cutoff {
			continue
		}
		p := []byte(payload)
		msgs = append(msgs, notify.Message{Stream: stream, Offset: o, Epoch: epoch, Payload: p,
			Frame: notify.EncodeFrame(p, notify.Position{Offset: o, Epoch: epoch})})
	}
	return pos, msgs, nil
}

// scriptPosition reads a position as the history and join scripts return it: its epoch and
// its offset, both strings.
func scriptPosition(epoch, offset any) (notify.Position, error) {
	e, _ := epoch.(string)
	o, _ := offset.(string)
	n, err := strconv.ParseUint(o, 10, 64)
	if err != nil {
		return notify.Position{}, fmt.Errorf("offset %q", o)
	}
	return notify.Position{Offset: n, Epoch: e}, nil
}

// historyScript returns the position and the history, creating the position when the stream
// has none so that later offsets belong to the epoch it returns. A position created here, for
// a stream without events, lives for the history's TTL only (its first event extends it to
// StreamRetention): a client that reads the position of many topics that never get an event
// pins about 100 bytes of Redis per topic for HistoryTTL, not for a day. A client that comes
// back later to such a topic gets recovered:false, which is honest: the position it held is
// gone, and with it the proof that nothing was published.
// The list holds consecutive offsets, the newest being the position's, so the entries after a
// position of the same epoch are its last (offset - after) ones: nothing older is read.
// Like the publish script, it starts a new epoch for a stream whose epoch was minted on
// another server (failover.go); shardedHistoryScript is its variant for Redis Cluster.
// KEYS: position, history, and on a single Redis the marker. ARGV: new epoch, position ttl s,
// after's epoch ("" for none) and offset.
var historyScript, shardedHistoryScript = historyScripts()

func historyScripts() (single, cluster *redis.Script) {
	s, c := withSID(`
local kpos, khist, kmarker = KEYS[1], KEYS[2], KEYS[3]
local new_epoch, pos_ttl = ARGV[1], ARGV[2]
` + positionLua + `
local entries = {}
if ARGV[3] == epoch then
  local n = tonumber(offset) - tonumber(ARGV[4])
  if n > 0 then
    entries = redis.call('LRANGE', khist, -n, -1)
  end
end
return {epoch, offset, entries}
`)
	return combinable(s), redis.NewScript(c)
}
