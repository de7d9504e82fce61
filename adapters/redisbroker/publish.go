package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
)

// Publishing: every Publish hands its send to one publisher goroutine and waits for the
// answer. The publisher takes every send waiting at that moment (up to maxPipeline) and sends
// them in one pipeline, one round trip; sends that arrive meanwhile wait for the next. A lone
// send leaves at once: nothing waits for company. Each send is still one script, so a stream's
// offset, history and publish stay atomic, and a pipeline keeps the order of the sends in it.

// maxPipeline bounds the sends in one round trip, and the sends queued for the next.
const maxPipeline = 256

// publishers is how many pipelines may be in flight at once: while one waits for Redis, the
// next takes the sends queued meanwhile. Sends of one caller stay in order (each waits for its
// answer); concurrent callers' sends had no order to keep.
const publishers = 4

// publishTimeout bounds one pipeline's round trip.
const publishTimeout = 5 * time.Second

// pubReq is one send waiting for the publisher.
type pubReq struct {
	stream    string
	payload   []byte // a copy: the hub reuses its memory once Publish returns
	ephemeral bool
	done      chan error // capacity 1: the publisher's answer
}

var pubReqs = sync.Pool{New: func() any { return &pubReq{done: make(chan error, 1)} }}

var errClosed = errors.New("broker closed")

// Publish hands the send to the publisher and waits for Redis's answer.
func (b *Broker) Publish(ctx context.Context, stream string, payload []byte, ephemeral bool) error {
	r := pubReqs.Get().(*pubReq)
	r.stream, r.ephemeral = stream, ephemeral
	r.payload = append(r.payload[:0], payload...)
	select {
	case b.pubQ <- r:
	case <-ctx.Done():
		pubReqs.Put(r)
		return fmt.Errorf("redisbroker: publish: %w", ctx.Err())
	case <-b.stop:
		pubReqs.Put(r)
		return fmt.Errorf("redisbroker: publish: %w", errClosed)
	}
	select {
	case err := <-r.done:
		pubReqs.Put(r)
		if err != nil {
			return fmt.Errorf("redisbroker: publish: %w", err)
		}
		return nil
	case <-ctx.Done():
		// The publisher still answers into r.done; r is left to the collector.
		return fmt.Errorf("redisbroker: publish: %w", ctx.Err())
	}
}

// publisher sends the queued sends, pipelined, until the broker closes; then it answers what is
// still queued with errClosed.
func (b *Broker) publisher() {
	defer b.pubDone.Done()
	drain(b.stop, b.pubQ, b.publishBatch, func(r *pubReq) { r.done <- errClosed })
}

// drain runs q's items in batches until stop closes: it waits for one, takes the others
// waiting at that moment (up to maxPipeline) and hands them to run, which answers them; items
// queued meanwhile wait for the next batch. Once stop closes, fail answers what is still
// queued. The publishers and the readers (history.go) are drains.
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
func (b *Broker) publishBatch(batch []*pubReq) {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	cmds := b.pipeline(ctx, batch)
	if noScript(cmds) {
		if err := b.script.Load(ctx, b.client).Err(); err == nil {
			cmds = b.pipeline(ctx, batch)
		}
	}
	failed := false
	for i, r := range batch {
		err := cmds[i].Err()
		failed = failed || err != nil
		r.done <- err
	}
	if failed && b.cluster != nil {
		// go-redis reloads the cluster's layout on MOVED, or every few seconds: a master that
		// went away (a failover) would fail sends until then.
		b.cluster.ReloadState(ctx)
	}
}

func (b *Broker) pipeline(ctx context.Context, batch []*pubReq) []redis.Cmder {
	pipe := b.client.Pipeline()
	cmds := make([]redis.Cmder, len(batch))
	now := time.Now().UnixMilli()
	for i, r := range batch {
		if r.ephemeral {
			if b.cluster != nil {
				cmds[i] = pipe.SPublish(ctx, b.channel(r.stream), "0 - "+string(r.payload))
			} else {
				cmds[i] = pipe.Publish(ctx, b.channel(r.stream), "0 - "+string(r.payload))
			}
			continue
		}
		cmds[i] = b.script.EvalSha(ctx, pipe, b.keys(r.stream), b.channel(r.stream), r.payload,
			b.opts.HistorySize, b.opts.HistoryTTL.Milliseconds(), int64(notify.StreamRetention/time.Second),
			notify.NewEpoch(), now)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	return cmds
}

func noScript(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if err := c.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			return true
		}
	}
	return false
}

// publishScript assigns the next offset, appends to the history and publishes, atomically;
// shardedPublishScript is the same with SPUBLISH, for Redis Cluster, where the channel is in
// the keys' slot (see Broker.channel).
// KEYS: position, history. ARGV: channel, payload, size, ttl ms, position ttl s, new epoch, now ms.
var (
	publishScript        = redis.NewScript(publishLua)
	shardedPublishScript = redis.NewScript(strings.Replace(publishLua, "'PUBLISH'", "'SPUBLISH'", 1))
)

const publishLua = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[6]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('DEL', KEYS[2])
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('RPUSH', KEYS[2], offset .. ' ' .. ARGV[7] .. ' ' .. ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[1], offset .. ' ' .. epoch .. ' ' .. ARGV[2])
return offset
`
