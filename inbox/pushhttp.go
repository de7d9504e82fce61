package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// maxPushBody bounds the body of a push endpoint's request: a PushSubscription's JSON is a
// few hundred bytes, MaxMuted types of 256 bytes fit in 32 KB.
const maxPushBody = 32 << 10

// isPushOp reports whether the request path's last two segments name a push endpoint.
func isPushOp(dir, op string) bool {
	if !strings.HasSuffix(dir, "/push/") {
		return false
	}
	switch op {
	case "key", "subscriptions", "preferences", "ack":
		return true
	}
	return false
}

// servePush answers the push endpoints of an authenticated user (every one but ack).
func (ib *Inbox) servePush(w http.ResponseWriter, r *http.Request, user, op string) {
	ctx, cancel := context.WithTimeout(r.Context(), ib.cfg.RequestTimeout)
	defer cancel()
	reply := func(status int, v any, err error) {
		if errors.Is(err, ErrUnavailable) {
			ib.cfg.Logger.Warn("notify: inbox push request failed", "path", r.URL.Path, "user", user, "err", err)
		}
		if err == nil && status != http.StatusOK {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			if v != nil {
				_ = json.NewEncoder(w).Encode(v)
			}
			return
		}
		respond(w, v, err)
	}
	switch {
	case op == "key" && allow(w, r, http.MethodGet):
		reply(http.StatusOK, struct {
			PublicKey string `json:"publicKey"`
		}{ib.cfg.Push.PublicKey()}, nil)
	case op == "subscriptions" && allow(w, r, http.MethodGet, http.MethodPost, http.MethodDelete):
		switch r.Method {
		case http.MethodGet:
			subs, err := ib.Subscriptions(ctx, user)
			items := make([]subscriptionItem, len(subs))
			for i, s := range subs {
				items[i] = subscriptionItem{s.ID, ShortEndpoint(s.Endpoint), s.CreatedAt}
			}
			reply(http.StatusOK, struct {
				Items []subscriptionItem `json:"items"`
			}{items}, err)
		case http.MethodPost:
			var body struct {
				Endpoint string `json:"endpoint"`
				Keys     struct {
					P256dh string `json:"p256dh"`
					Auth   string `json:"auth"`
				} `json:"keys"`
			}
			if err := decodeBody(w, r, &body, `body must be PushSubscription.toJSON()`); err != nil {
				reply(0, nil, err)
				return
			}
			s, created, err := ib.AddSubscription(ctx, user, Subscription{Endpoint: body.Endpoint, P256dh: body.Keys.P256dh, Auth: body.Keys.Auth})
			status := http.StatusOK
			if created {
				status = http.StatusCreated
			}
			reply(status, struct {
				ID string `json:"id"`
			}{s.ID}, err)
		case http.MethodDelete:
			var body struct {
				Endpoint string `json:"endpoint"`
			}
			if err := decodeBody(w, r, &body, `body must be {"endpoint":"..."}`); err != nil {
				reply(0, nil, err)
				return
			}
			reply(http.StatusNoContent, nil, ib.RemoveSubscription(ctx, user, body.Endpoint))
		}
	case op == "preferences" && allow(w, r, http.MethodGet, http.MethodPut):
		var muted []string
		var err error
		if r.Method == http.MethodGet {
			muted, err = ib.MutedTypes(ctx, user)
		} else {
			var body struct {
				Muted []string `json:"muted"`
			}
			if err = decodeBody(w, r, &body, `body must be {"muted":["..."]}`); err == nil {
				muted, err = ib.SetMutedTypes(ctx, user, body.Muted)
			}
		}
		reply(http.StatusOK, preferences{muted}, err)
	}
}

type subscriptionItem struct {
	ID        string    `json:"id"`
	Endpoint  string    `json:"endpoint"`
	CreatedAt time.Time `json:"createdAt"`
}

type preferences struct {
	Muted []string `json:"muted"`
}

// serveAck answers POST push/ack, which the ack capability authorizes.
func (ib *Inbox) serveAck(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ib.cfg.RequestTimeout)
	defer cancel()
	var body struct {
		Ack string `json:"ack"`
		Op  Op     `json:"op"`
	}
	err := decodeBody(w, r, &body, `body must be {"ack":"...","op":"seen"}`)
	var c Counts
	if err == nil {
		c, err = ib.Ack(ctx, body.Ack, body.Op)
	}
	if errors.Is(err, ErrUnavailable) {
		ib.cfg.Logger.Warn("notify: inbox push ack failed", "err", err)
	}
	respond(w, struct {
		Counts Counts `json:"counts"`
	}{c}, err)
}

// allow reports whether r's method is one of methods, and answers 405 when not. GET allows
// HEAD.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m || m == http.MethodGet && r.Method == http.MethodHead {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use "+strings.Join(methods, " or "))
	return false
}

// decodeBody reads r's body, one JSON object of at most maxPushBody bytes, into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, shape string) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPushBody))
	if err := dec.Decode(v); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return ErrTooLarge
		}
		return errors.Join(ErrInvalid, errors.New(shape))
	}
	if _, err := dec.Token(); err != io.EOF {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return ErrTooLarge
		}
		return errors.Join(ErrInvalid, errors.New("body must hold one JSON object"))
	}
	return nil
}
