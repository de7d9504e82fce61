package redisbroker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// On a single Redis the reader runs a pipeline's script calls (joins, leaves, history reads)
// as one call of a script that holds them all (batchScript), because a script call costs
// Redis more to start than most of these scripts cost to run: a connect's join and history
// read, and those of the sessions connecting at the same time, cost one call. On Redis Cluster
// a call's keys must share a slot, so each script is a call of its own there.

// combined holds the scripts batchScript may run, in the order of their index; it is written
// while the package's variables are initialized and only read afterwards.
var combined struct {
	scripts []*redis.Script
	srcs    []string
}

// combinable returns the script of src, which the reader may run inside batchScript on a
// single Redis. src reads KEYS and ARGV, and returns a table, as a script of its own does.
func combinable(src string) *redis.Script {
	s := redis.NewScript(src)
	combined.scripts = append(combined.scripts, s)
	combined.srcs = append(combined.srcs, src)
	return s
}

// combinedIndex returns the script's index in batchScript (1-based), or 0 for one it does not
// hold.
func combinedIndex(s *redis.Script) int {
	for i, c := range combined.scripts {
		if c == s {
			return i + 1
		}
	}
	return 0
}

// batchScript runs several calls of the combinable scripts: ARGV holds, for each call, its
// script's index, its key count and argument count, then its arguments; KEYS the calls' keys
// in turn. It returns for each call {1, reply}, or {0, error} for one that failed (alone: the
// calls before it stay done, as separate calls would).
var batchScript = sync.OnceValue(func() *redis.Script {
	var b strings.Builder
	b.WriteString("local fns = {}\n")
	for i, src := range combined.srcs {
		b.WriteString("fns[" + strconv.Itoa(i+1) + "] = function(KEYS, ARGV)\n" + src + "\nend\n")
	}
	b.WriteString(`
local out = {}
local k, a = 1, 1
while a <= #ARGV do
  local fn, nk, na = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local keys, args = {}, {}
  for i = 1, nk do keys[i] = KEYS[k + i - 1] end
  for i = 1, na do args[i] = ARGV[a + 2 + i] end
  k, a = k + nk, a + 3 + na
  local ok, r = pcall(fns[fn], keys, args)
  if ok then
    out[#out + 1] = {1, r}
  else
    out[#out + 1] = {0, type(r) == 'table' and r.err or tostring(r)}
  end
end
return out
`)
	return redis.NewScript(b.String())
})

// combine queues the batch's calls on pipe: on a single Redis the calls of combinable scripts
// go in one call of batchScript when there are two or more, the others each on its own. It
// returns each call's command, and for those in the batch call their place in its reply (-1
// for the others); scripts lists the scripts it used, for a NOSCRIPT reload. With eval the
// scripts go as their source (EVAL), not their digest.
func (rd *reader) combine(ctx context.Context, pipe redis.Pipeliner, batch []*callReq, eval bool) (cmds []redis.Cmder, place []int, scripts []*redis.Script) {
	cmds, place = make([]redis.Cmder, len(batch)), make([]int, len(batch))
	var keys []string
	var args []any
	n := 0
	if rd.cluster == nil {
		for _, r := range batch {
			if combinedIndex(r.script) > 0 {
				n++
			}
		}
	}
	k := 0
	for i, r := range batch {
		place[i] = -1
		idx := 0
		if n > 1 {
			idx = combinedIndex(r.script)
		}
		if idx == 0 {
			cmds[i] = run(ctx, pipe, r.script, eval, r.keys, r.args...)
			scripts = append(scripts, r.script)
			continue
		}
		keys = append(keys, r.keys...)
		args = append(args, idx, len(r.keys), len(r.args))
		args = append(args, r.args...)
		place[i] = k
		k++
	}
	if k > 0 {
		call := run(ctx, pipe, batchScript(), eval, keys, args...)
		scripts = append(scripts, batchScript())
		for i := range batch {
			if place[i] >= 0 {
				cmds[i] = call
			}
		}
	}
	return cmds, place, scripts
}

// reply returns a call's reply: its command's, or its part of the batch call's.
func reply(c redis.Cmder, place int) ([]any, error) {
	res, err := c.(*redis.Cmd).Slice()
	if err != nil || place < 0 {
		return res, err
	}
	if place >= len(res) {
		return nil, errUnexpected
	}
	part, ok := res[place].([]any)
	if !ok || len(part) == 0 {
		return nil, errUnexpected
	}
	if ok, _ := part[0].(int64); ok != 1 {
		msg, _ := part[1].(string)
		return nil, errors.New(msg)
	}
	if len(part) < 2 {
		return nil, nil // the script returned nothing
	}
	out, _ := part[1].([]any)
	return out, nil
}

// run queues script on pipe: by its digest (EVALSHA), or with eval by its source (EVAL), which
// needs no script cache. A batch refused with NOSCRIPT is sent again with eval when loading
// its scripts did not help: on Redis Cluster a restarted master has an empty script cache, and
// loading goes to every master the client knows, which may not be the one that answered.
func run(ctx context.Context, pipe redis.Pipeliner, script *redis.Script, eval bool, keys []string, args ...any) *redis.Cmd {
	if eval {
		return script.Eval(ctx, pipe, keys, args...)
	}
	return script.EvalSha(ctx, pipe, keys, args...)
}
