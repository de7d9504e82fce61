package main

import (
	"context"
	"log"
	"net/http"
	"sync/atomic"

	"github.com/centrifugal/centrifuge"
)

// centrifugeVariant is centrifuge with its default configuration, as its examples set it up:
// the JWT checked in HTTP middleware that sets the connection's credentials, every client
// subscribed on the server side to its personal channel and to a channel for everyone,
// per-user sends and broadcasts with Node.Publish. Clients speak centrifuge's JSON protocol.
type centrifugeVariant struct {
	node  *centrifuge.Node
	slowN atomic.Uint64
}

const centrifugeAll = "all"

func newCentrifuge() *centrifugeVariant {
	node, err := centrifuge.New(centrifuge.Config{})
	if err != nil {
		log.Fatal(err)
	}
	v := &centrifugeVariant{node: node}
	node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		cred, _ := centrifuge.GetCredentials(ctx)
		return centrifuge.ConnectReply{Subscriptions: map[string]centrifuge.SubscribeOptions{
			"u:" + cred.UserID: {}, centrifugeAll: {},
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
	if _, err := v.node.Publish("u:"+user, msg); err != nil {
		log.Print(err)
	}
}

func (v *centrifugeVariant) broadcast(msg []byte) {
	if _, err := v.node.Publish(centrifugeAll, msg); err != nil {
		log.Print(err)
	}
}

func (v *centrifugeVariant) conns() int      { return v.node.Hub().NumClients() }
func (v *centrifugeVariant) slow() uint64    { return v.slowN.Load() }
func (v *centrifugeVariant) dropped() uint64 { return 0 }
