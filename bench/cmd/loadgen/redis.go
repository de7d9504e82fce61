package main

import (
	"github.com/gonotify/notify/bench/internal/proc"

	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Redis variants run on the Redis at -redis (bench/run starts a private one): a name
// containing -redis (notify-redis, centrifuge-redis, centrifuge-redis-full) is such a server
// variant. Every variant whose name starts with centrifuge speaks centrifuge's protocol.

// onRedis reports whether the variant keeps its broker on Redis.
func onRedis(name string) bool { return strings.Contains(name, "-redis") }

// proto is the protocol a variant's clients speak: notify-base and notify-redis speak
// notify's; centrifuge-history, centrifuge-redis and centrifuge-redis-full centrifuge's.
func proto(name string) string {
	if strings.HasPrefix(name, "centrifuge") {
		return "centrifuge"
	}
	return strings.TrimSuffix(kind(name), "-redis")
}

var (
	redisOnce   sync.Once
	redisClient *redis.Client
)

// rdb is the client of -redis, for FLUSHALL and INFO; nil without -redis.
func rdb() *redis.Client {
	redisOnce.Do(func() {
		if *redisURL == "" {
			return
		}
		o, err := redis.ParseURL(*redisURL)
		if err != nil {
			return
		}
		o.PoolSize = 1
		redisClient = redis.NewClient(o)
	})
	return redisClient
}

// flushRedis empties the Redis before a Redis variant starts, so that every one starts alike
// (no history, no positions, no scripts loaded).
func flushRedis() error {
	c := rdb()
	if c == nil {
		return fmt.Errorf("no Redis: the Redis variants need -redis URL (bench/run starts one)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("FLUSHALL: %w", err)
	}
	return c.ScriptFlush(ctx).Err()
}

// redisStats are Redis's own counters (INFO stats), over every client.
type redisStats struct {
	ok bool
	// commands processed, the commands Lua scripts call included (Redis counts those too)
	commands uint64
	// read events on client connections: a client's round trip is one, or more when its
	// request is longer than Redis reads at once (16 KB), so it bounds round trips from above
	reads uint64
	// CPU time the redis-server process has spent (/proc/PID/stat, PID from INFO server), when
	// it runs on this machine: cpuOK
	cpu   time.Duration
	cpuOK bool
}

func readRedisStats() redisStats {
	c := rdb()
	if c == nil {
		return redisStats{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "stats", "server").Result()
	if err != nil {
		return redisStats{}
	}
	var s redisStats
	var n int
	for line := range strings.SplitSeq(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "total_commands_processed":
			s.commands, _ = strconv.ParseUint(v, 10, 64)
			n++
		case "total_reads_processed":
			s.reads, _ = strconv.ParseUint(v, 10, 64)
			n++
		case "process_id":
			s.cpu, s.cpuOK = proc.CPU(v)
		}
	}
	s.ok = n == 2
	return s
}

// idleWindow is how long idleUpkeep watches idle sessions: longer than notify's presence
// upkeep period (PresenceTTL/3, 10 s by default), so that every session's entry is refreshed
// once in it.
const idleWindow = 12 * time.Second

// idleUpkeep measures what n idle sessions cost per session and second: the redis-server's CPU
// time and the server's, in ns, over idleWindow.
func idleUpkeep(srv *server, n int) (redisCPU, nodeCPU float64) {
	r0, s0 := readRedisStats(), srvCPU(srv)
	time.Sleep(idleWindow)
	r1, s1 := readRedisStats(), srvCPU(srv)
	per := float64(n) * idleWindow.Seconds()
	if r0.cpuOK && r1.cpuOK {
		redisCPU = float64(r1.cpu-r0.cpu) / per
	}
	if s0 > 0 && s1 > 0 {
		nodeCPU = float64(s1-s0) / per
	}
	return redisCPU, nodeCPU
}

func srvCPU(srv *server) int64 {
	st, err := srv.stats()
	if err != nil {
		return 0
	}
	return st.CPU
}
