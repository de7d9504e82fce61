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

// Reading positions and history: every session that connects, and every subscription to a
// topic, reads its stream's position (and, to recover, the events after the client's). As
// with sends (publish.go), every History hands its read to a reader goroutine and waits; the
// reader takes every read waiting at that moment and sends them in one pipeline, one round
// trip, so that a burst of connects costs Redis (and this node) one write and one read per
// batch rather than per session, and no connecting session's goroutine runs go-redis's call
// path (whose stack growth was a tenth of a connect's CPU time). A lone read leaves at once.

// readers is how many read pipelines may be in flight at once.
const readers = 2

// histReq is one History call waiting for a reader.
type histReq struct {
	stream string
	since  notify.Position // Epoch "" when the caller asked for the position only
	done   chan histAns    // capacity 1: the reader's answer
}

type histAns struct {
	res []any
	err error
}

var histReqs = sync.Pool{New: func() any { return &histReq{done: make(chan histAns, 1)} }}

// History reads the stream's position and, when after is of its current epoch, the events
// after it that the history holds within the TTL. It waits for a reader's round trip.
func (b *Broker) History(ctx context.Context, stream string, after *notify.Position) (notify.Position, []notify.Message, error) {
	r := histReqs.Get().(*histReq)
	r.stream, r.since = stream, notify.Position{}
	if after != nil {
		r.since = *after
	}
	select {
	case b.histQ <- r:
	case <-ctx.Done():
		histReqs.Put(r)
		return notify.Position{}, nil, fmt.Errorf("redisbroker: history: %w", ctx.Err())
	case <-b.stop:
		histReqs.Put(r)
		return notify.Position{}, nil, fmt.Errorf("redisbroker: history: %w", errClosed)
	}
	var a histAns
	select {
	case a = <-r.done:
		histReqs.Put(r)
	case <-ctx.Done():
		// The reader still answers into r.done; r is left to the collector.
		return notify.Position{}, nil, fmt.Errorf("redisbroker: history: %w", ctx.Err())
	}
	if a.err != nil {
		return notify.Position{}, nil, fmt.Errorf("redisbroker: history: %w", a.err)
	}
	pos, msgs, err := b.parseHistory(stream, a.res)
	if err != nil {
		return notify.Position{}, nil, err
	}
	b.advance(b.channel(stream), pos, false)
	return pos, msgs, nil
}

// reader sends the queued reads, pipelined, until the broker closes; then it answers what is
// still queued with errClosed.
func (b *Broker) reader() {
	defer b.pubDone.Done()
	batch := make([]*histReq, 0, maxPipeline)
	for {
		select {
		case <-b.stop:
			for {
				select {
				case r := <-b.histQ:
					r.done <- histAns{err: errClosed}
				default:
					return
				}
			}
		case r := <-b.histQ:
			batch = append(batch[:0], r)
		}
	fill:
		for len(batch) < maxPipeline {
			select {
			case r := <-b.histQ:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		b.readBatch(batch)
		clear(batch)
	}
}

// readBatch reads a batch in one pipeline and answers each read; a Redis that does not know
// the script yet gets it loaded and the batch again.
func (b *Broker) readBatch(batch []*histReq) {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	cmds := b.readPipeline(ctx, batch)
	if noScript(cmds) {
		if err := historyScript.Load(ctx, b.client).Err(); err == nil {
			cmds = b.readPipeline(ctx, batch)
		}
	}
	failed := false
	for i, r := range batch {
		res, err := cmds[i].(*redis.Cmd).Slice()
		failed = failed || err != nil
		r.done <- histAns{res: res, err: err}
	}
	if failed && b.cluster != nil {
		b.cluster.ReloadState(ctx) // as for a send: the shard may have a new master (see publishBatch)
	}
}

func (b *Broker) readPipeline(ctx context.Context, batch []*histReq) []redis.Cmder {
	pipe := b.client.Pipeline()
	cmds := make([]redis.Cmder, len(batch))
	ttl := max(1, int64((b.opts.HistoryTTL+time.Second-1)/time.Second))
	for i, r := range batch {
		cmds[i] = historyScript.EvalSha(ctx, pipe, b.keys(r.stream), notify.NewEpoch(), ttl, r.since.Epoch, r.since.Offset)
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
