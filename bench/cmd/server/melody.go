package main

import (
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/olahol/melody"
)

// melodyVariant is melody used bare, as its README suggests: the JWT checked in the handler,
// HandleRequestWithKeys with the user ID, per-user sends with BroadcastFilter, broadcasts with
// Broadcast, default configuration.
type melodyVariant struct {
	m    *melody.Melody
	drop atomic.Uint64
}

func newMelody() *melodyVariant {
	v := &melodyVariant{m: melody.New()}
	v.m.HandleError(func(_ *melody.Session, err error) {
		if errors.Is(err, melody.ErrMessageBufferFull) {
			v.drop.Add(1)
		}
	})
	return v
}

func (v *melodyVariant) ws() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, err := userFromToken(r)
		if err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_ = v.m.HandleRequestWithKeys(w, r, map[string]any{"user": user})
	})
}

func (v *melodyVariant) sendUser(user string, msg []byte, _ bool) {
	_ = v.m.BroadcastFilter(msg, func(s *melody.Session) bool {
		u, _ := s.Get("user")
		return u == user
	})
}

func (v *melodyVariant) broadcast(msg []byte) { _ = v.m.Broadcast(msg) }
func (v *melodyVariant) conns() int           { return v.m.Len() }
func (v *melodyVariant) slow() uint64         { return 0 }
func (v *melodyVariant) dropped() uint64      { return v.drop.Load() }
