package main

import (
	"context"
	"log"
	"net/http"
	"sync/atomic"

	"github.com/centrifugal/centrifuge"
	"github.com/prometheus/client_golang/prometheus"
)

// centrifugeVariant is centrifuge with its default configuration, as its examples set it up:
// the JWT checked in HTTP middleware that sets the connection's credentials, every client
// subscribed on the server side to its personal channel and to a channel for everyone,
// per-user sends and broadcasts with Node.Publish. Clients speak centrifuge's JSON protocol.
type centrifugeVariant struct {
	node     *centrifuge.Node
	userOpts []centrifuge.PublishOption // per-user publications' options (centrifuge-redis: history)
	onRedis  bool                       // centrifuge-redis: dropped reads the broker's drops
	slowN    atomic.Uint64
}

const centrifugeAll = "all"

func newCentrifuge() *centrifugeVariant { return newCentrifugeWith(nil, centrifuge.SubscribeOptions{}) }

// newCentrifugeHistory (centrifuge-history) is centrifuge as newCentrifuge sets it up, doing
// the work notify does in memory: per-user publications keep a history of historySize for
// historyTTL (notify's defaults), and the personal channel is subscribed with positioning and
// recovery on (its stream position sent at subscribe, publications' offsets tracked), as a
// notify session's stream is. Broadcasts as in centrifuge: no history, as notify's keep none.
func newCentrifugeHistory() *centrifugeVariant {
	return newCentrifugeWith(nil, centrifuge.SubscribeOptions{EnablePositioning: true, EnableRecovery: true},
		centrifuge.WithHistory(historySize, historyTTL))
}

// newCentrifugeWith sets centrifuge up; setup, when set, configures the node before it runs
// (centrifuge-redis sets its broker there), personal is the personal channel's subscription,
// and userOpts go with every per-user publication.
func newCentrifugeWith(setup func(*centrifuge.Node), personal centrifuge.SubscribeOptions, userOpts ...centrifuge.PublishOption) *centrifugeVariant {
	node, err := centrifuge.New(centrifuge.Config{})
	if err != nil {
		log.Fatal(err)
	}
	if setup != nil {
		setup(node)
	}
	v := &centrifugeVariant{node: node, userOpts: userOpts}
	node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		cred, _ := centrifuge.GetCredentials(ctx)
		return centrifuge.ConnectReply{Subscriptions: map[string]centrifuge.SubscribeOptions{
			"u:" + cred.UserID: personal, centrifugeAll: {},
		}}, nil
	})
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnDisconnect(func(e centrifuge.DisconnectEvent) {
			if e.Code == centrifuge.DisconnectSlow.Code {
				v.slowN.Add(1)
			}
		})
	})
	if err := node.Run(); err != nil {
		log.Fatal(err)
	}
	return v
}

func (v *centrifugeVariant) ws() http.Handler {
	h := centrifuge.NewWebsocketHandler(v.node, centrifuge.WebsocketConfig{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, err := userFromToken(r)
		if err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		ctx := centrifuge.SetCredentials(r.Context(), &centrifuge.Credentials{UserID: user})
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (v *centrifugeVariant) sendUser(user string, msg []byte, _ bool) {
	if _, err := v.node.Publish("u:"+user, msg, v.userOpts...); err != nil {
		log.Print(err)
	}
}

func (v *centrifugeVariant) broadcast(msg []byte) {
	if _, err := v.node.Publish(centrifugeAll, msg); err != nil {
		log.Print(err)
	}
}

func (v *centrifugeVariant) conns() int   { return v.node.Hub().NumClients() }
func (v *centrifugeVariant) slow() uint64 { return v.slowN.Load() }

// dropped counts the messages centrifuge's Redis broker received from Redis and dropped because
// its processing buffer was full (centrifuge_broker_redis_pub_sub_dropped_messages): its pub/sub
// delivers at most once. Zero with the in-memory broker, which drops nothing (and whose server
// is spared gathering the metrics).
func (v *centrifugeVariant) dropped() uint64 {
	if !v.onRedis {
		return 0
	}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return 0
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "centrifuge_broker_redis_pub_sub_dropped_messages" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return uint64(n)
}
