package redisbroker

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
)

// Names returns a stream's keys and channel, for the tests that check their cluster slots.
func (b *Broker) Names(stream string) (keys []string, channel string) {
	return b.pub.names.keys(stream), b.pub.names.channel(stream)
}

// PublishPosition is the publisher's publish, for the tests of what it returns.
func (b *Broker) PublishPosition(ctx context.Context, stream string, payload []byte, ephemeral bool) (notify.Position, int, error) {
	return b.pub.publish(ctx, stream, payload, ephemeral)
}

// ScriptNames returns the names of the broker's reading scripts a command runs, the calls in a
// batch call included ("history", "join", "join+position", "other" for the rest), for the
// tests that count what a connect asks of Redis.
func ScriptNames(cmd redis.Cmder) []string {
	args := cmd.Args()
	if len(args) < 3 || !strings.EqualFold(fmt.Sprint(args[0]), "evalsha") {
		return nil
	}
	name := func(sha string) string {
		switch sha {
		case historyScript.Hash():
			return "history"
		case joinScript.Hash():
			return "join"
		case joinPositionScript.Hash():
			return "join+position"
		}
		return "other"
	}
	sha := fmt.Sprint(args[1])
	nk, _ := strconv.Atoi(fmt.Sprint(args[2]))
	if sha != batchScript().Hash() {
		return []string{name(sha)}
	}
	var out []string
	argv := args[3+nk:]
	for i := 0; i+2 < len(argv); {
		idx, _ := strconv.Atoi(fmt.Sprint(argv[i]))
		na, _ := strconv.Atoi(fmt.Sprint(argv[i+2]))
		out = append(out, name(combined.scripts[idx-1].Hash()))
		i += 3 + na
	}
	return out
}
