package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/internal/wire"
)

// A delivery report ([notify.Hub.SendReport]) is one script, one round trip: the publish
// script's work, which returns the number of subscribers PUBLISH (SPUBLISH on a cluster)
// answers (the nodes holding a session of the user), plus the user's live presence entries,
// whose key shares the stream's slot. It is sent on its own, not through the publisher's
// pipelines: a plain Send pays nothing for it.

var _ notify.Reporter = (*Broker)(nil)

// reportLua is publishLua with the presence counted. It is made from publishLua, so that the
// two cannot drift apart; reportParts panics at init if the publish script no longer has the
// shape it expects.
// KEYS: position, history, presence. ARGV: those of publishLua.
var reportLua = reportParts(publishLua)

func reportParts(lua string) string {
	const ret = "return {offset, epoch, receivers}"
	if !strings.HasSuffix(strings.TrimSpace(lua), ret) {
		panic("redisbroker: publishLua changed shape; update reportParts")
	}
	lua = strings.TrimSuffix(strings.TrimSpace(lua), ret)
	return lua + nowLua + `
return {offset, epoch, receivers, redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf')}
`
}

// ephemeralReportLua publishes without history. KEYS: presence. ARGV: channel, message.
const ephemeralReportLua = nowLua + `
local receivers = redis.call('PUBLISH', ARGV[1], ARGV[2])
return {0, '', receivers, redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')}
`

var (
	reportScript                 = redis.NewScript(reportLua)
	shardedReportScript          = redis.NewScript(strings.Replace(reportLua, "'PUBLISH'", "'SPUBLISH'", 1))
	ephemeralReportScript        = redis.NewScript(ephemeralReportLua)
	shardedEphemeralReportScript = redis.NewScript(strings.Replace(ephemeralReportLua, "'PUBLISH'", "'SPUBLISH'", 1))
)

// report publishes like publish and reports the event's position, the nodes that received it
// and the user's sessions in presence, in one round trip. It works on user streams only.
func (p *publisher) report(ctx context.Context, stream string, payload []byte, ephemeral bool) (notify.Report, error) {
	user, ok := wire.UserOf(stream)
	if !ok {
		return notify.Report{}, errors.New("redisbroker: report: not a user stream")
	}
	pres := p.names.presenceKeys(user)[0]
	now := time.Now()
	var res []any
	var err error
	if ephemeral {
		s := ephemeralReportScript
		if p.cluster != nil {
			s = shardedEphemeralReportScript
		}
		res, err = s.Run(ctx, p.client, []string{pres}, p.names.channel(stream), "0 - "+string(payload)).Slice()
	} else {
		s := reportScript
		if p.cluster != nil {
			s = shardedReportScript
		}
		keys := append(p.names.keys(stream), pres)
		res, err = s.Run(ctx, p.client, keys, p.names.channel(stream), payload,
			p.historySize, p.historyTTL.Milliseconds(), int64(notify.StreamRetention/time.Second),
			notify.NewEpoch(), now.UnixMilli()).Slice()
	}
	if err != nil {
		return notify.Report{}, fmt.Errorf("redisbroker: report: %w", err)
	}
	if len(res) != 4 {
		return notify.Report{}, errors.New("redisbroker: report: unexpected reply")
	}
	offset, _ := res[0].(int64)
	epoch, _ := res[1].(string)
	receivers, _ := res[2].(int64)
	sessions, _ := res[3].(int64)
	r := notify.Report{Sessions: int(sessions), Nodes: int(receivers)}
	if !ephemeral {
		r.Position = notify.Position{Offset: uint64(offset), Epoch: epoch}
		r.Stored, r.StoredUntil = true, now.Add(p.historyTTL)
	}
	return r, nil
}
