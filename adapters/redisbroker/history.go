package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/internal/wire"
)

// Reading positions and history, and presence: every session that connects, and every
// subscription to a topic, reads its stream's position (and, to recover, the events after the
// client's), and a connect and a disconnect write the user's presence. As with sends
// (publish.go), each such script call is handed to a reader goroutine, which takes every call
// waiting at that moment and sends them in one pipeline, one round trip, so that a burst of
// connects costs Redis (and this node) one write and one read per batch rather than several
// per session, and no connecting session's goroutine runs go-redis's call path (whose stack
// growth was a tenth of a connect's CPU time). A lone call leaves at once.

// readers is how many read pipelines may be in flight at once.
const readers = 2

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

// call runs the script through a reader's pipeline and returns its reply, an array.
func (b *Broker) call(ctx context.Context, script *redis.Script, keys []string, args ...any) ([]any, error) {
	r := callReqs.Get().(*callReq)
	r.script, r.keys, r.args = script, keys, args
	select {
	case b.callQ <- r:
	case <-ctx.Done():
		r.keys, r.args = nil, nil
		callReqs.Put(r)
		return nil, ctx.Err()
	case <-b.stop:
		r.keys, r.args = nil, nil
		callReqs.Put(r)
		return nil, errClosed
	}
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

// History reads the stream's position and, when after is of its current epoch, the events
// after it that the history holds within the TTL, in a reader's round trip.
func (b *Broker) History(ctx context.Context, stream string, after *notify.Position) (notify.Position, []notify.Message, error) {
	var since notify.Position
	if after != nil {
		since = *after
	}
	ttl := max(1, int64((b.opts.HistoryTTL+time.Second-1)/time.Second))
	res, err := b.call(ctx, historyScript, b.keys(stream), notify.NewEpoch(), ttl, since.Epoch, since.Offset)
	if err != nil {
		return notify.Position{}, nil, fmt.Errorf("redisbroker: history: %w", err)
	}
	pos, msgs, err := b.parseHistory(stream, res)
	if err != nil {
		return notify.Position{}, nil, err
	}
	b.advance(b.channel(stream), pos, false)
	return pos, msgs, nil
}

// reader sends the queued calls, pipelined, until the broker closes; then it answers what is
// still queued with errClosed.
func (b *Broker) reader() {
	defer b.pubDone.Done()
	drain(b.stop, b.callQ, b.callBatch, func(r *callReq) { r.done <- callAns{err: errClosed} })
}

// callBatch runs a batch in one pipeline and answers each call; a Redis that does not know a
// script yet (it restarted, or the batch is the first) gets the batch's scripts loaded and the
// batch again.
func (b *Broker) callBatch(batch []*callReq) {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	cmds := b.callPipeline(ctx, batch)
	if noScript(cmds) {
		loaded := true
		seen := map[*redis.Script]bool{}
		for _, r := range batch {
			if !seen[r.script] {
				seen[r.script] = true
				loaded = loaded && r.script.Load(ctx, b.client).Err() == nil
			}
		}
		if loaded {
			cmds = b.callPipeline(ctx, batch)
		}
	}
	failed := false
	for i, r := range batch {
		res, err := cmds[i].(*redis.Cmd).Slice()
		failed = failed || err != nil
		r.done <- callAns{res: res, err: err}
	}
	if failed && b.cluster != nil {
		b.cluster.ReloadState(ctx) // as for a send: the shard may have a new master (see publishBatch)
	}
}

func (b *Broker) callPipeline(ctx context.Context, batch []*callReq) []redis.Cmder {
	pipe := b.client.Pipeline()
	cmds := make([]redis.Cmder, len(batch))
	for i, r := range batch {
		cmds[i] = r.script.EvalSha(ctx, pipe, r.keys, r.args...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	return cmds
}

// parseHistory reads historyScript's reply: the position and the entries within the TTL. A
// malformed entry is skipped and logged: the client asking for it sees a gap and is told
// recovered:false, and the stream stays usable.
func (b *Broker) parseHistory(stream string, res []any) (notify.Position, []notify.Message, error) {
	if len(res) != 3 {
		return notify.Position{}, nil, errors.New("redisbroker: history: unexpected reply")
	}
	epoch, _ := res[0].(string)
	offStr, _ := res[1].(string)
	offset, err := strconv.ParseUint(offStr, 10, 64)
	if err != nil {
		return notify.Position{}, nil, fmt.Errorf("redisbroker: history: offset %q", offStr)
	}
	entries, _ := res[2].([]any)
	cutoff := time.Now().Add(-b.opts.HistoryTTL).UnixMilli()
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
			b.opts.Logger.Warn("notify: redisbroker: skipped a malformed history entry", "stream", stream)
			continue
		}
		if ms < cutoff {
			continue
		}
		p := []byte(payload)
		msgs = append(msgs, notify.Message{Stream: stream, Offset: o, Epoch: epoch, Payload: p,
			Frame: wire.WithPosition(p, o, epoch)})
	}
	return notify.Position{Offset: offset, Epoch: epoch}, msgs, nil
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
// KEYS: position, history. ARGV: new epoch, position ttl s, after's epoch ("" for none) and
// offset.
var historyScript = redis.NewScript(`
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[2])
end
local offset = redis.call('HGET', KEYS[1], 'offset')
local entries = {}
if ARGV[3] == epoch then
  local n = tonumber(offset) - tonumber(ARGV[4])
  if n > 0 then
    entries = redis.call('LRANGE', KEYS[2], -n, -1)
  end
end
return {epoch, offset, entries}
`)
