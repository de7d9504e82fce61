package webpush_test

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gonotify/notify/adapters/webpush/webpushtest"
)

// pushService is a push service of the test's own: the receiving side of RFC 8030 on an
// httptest TLS server. It checks each request's VAPID JWT (RFC 8292) against the sender's
// public key and decrypts its aes128gcm body (RFC 8291) with the private key of the
// subscription the test made, so what arrives is checked, not assumed. Each subscription
// answers with the replies the test scripted for it, then 201.
type pushService struct {
	t      testing.TB
	srv    *httptest.Server
	vapid  string // the sender's public key, base64url
	origin string

	mu      sync.Mutex // guards subs, the scripts and the received messages
	subs    map[string]*testSub
	release chan struct{} // closed when the test ends: hanging replies return
}

// reply is a scripted answer: a status (and Retry-After), or a hang until the request's
// context ends or the test does.
type reply struct {
	status     int
	retryAfter string
	location   string // a redirect's target
	hang       bool
	endless    bool // 201, then a body that never ends, until the sender stops reading
}

// testSub is a subscription the test made: the browser's keys and what reached it.
type testSub struct {
	id       string
	key      *ecdh.PrivateKey
	auth     []byte
	script   []reply
	received []received
	requests int
}

// received is one push that arrived, decrypted, with its headers.
type received struct {
	payload map[string]any
	raw     []byte
	header  http.Header
	at      time.Time
}

func newPushService(t testing.TB, vapidPublic string) *pushService {
	t.Helper()
	ps := &pushService{t: t, vapid: vapidPublic, subs: make(map[string]*testSub), release: make(chan struct{})}
	ps.srv = httptest.NewTLSServer(http.HandlerFunc(ps.serve))
	ps.origin = ps.srv.URL
	t.Cleanup(func() {
		close(ps.release)
		ps.srv.Close()
	})
	return ps
}

// roots returns the certificate pool that trusts the service.
func (ps *pushService) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ps.srv.Certificate())
	return p
}

// subscribe makes a subscription: its endpoint and its keys as PushSubscription.toJSON
// gives them.
func (ps *pushService) subscribe(script ...reply) (endpoint, p256dh, auth string) {
	ps.t.Helper()
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		ps.t.Fatal(err)
	}
	a := make([]byte, 16)
	_, _ = rand.Read(a)
	idb := make([]byte, 12)
	_, _ = rand.Read(idb)
	s := &testSub{id: base64.RawURLEncoding.EncodeToString(idb), key: key, auth: a, script: script}
	ps.mu.Lock()
	ps.subs[s.id] = s
	ps.mu.Unlock()
	enc := base64.RawURLEncoding
	return ps.srv.URL + "/push/" + s.id, enc.EncodeToString(key.PublicKey().Bytes()), enc.EncodeToString(a)
}

// received returns the pushes that reached the endpoint, and how many requests did.
func (ps *pushService) got(endpoint string) ([]received, int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	s := ps.subs[endpoint[strings.LastIndex(endpoint, "/")+1:]]
	return append([]received(nil), s.received...), s.requests
}

func (ps *pushService) serve(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/push/")
	ps.mu.Lock()
	s := ps.subs[id]
	if s == nil || !ok || r.Method != http.MethodPost {
		ps.mu.Unlock()
		http.Error(w, "no such subscription", http.StatusNotFound)
		return
	}
	s.requests++
	var rep reply
	if len(s.script) > 0 {
		rep, s.script = s.script[0], s.script[1:]
	}
	ps.mu.Unlock()
	if err := ps.check(r); err != nil {
		ps.t.Errorf("push service: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8192))
	if err != nil {
		return
	}
	plain, err := webpushtest.Decrypt(s.key, s.auth, body)
	if err != nil {
		ps.t.Errorf("push service: cannot decrypt: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch {
	case rep.hang:
		select {
		case <-r.Context().Done():
		case <-ps.release:
		}
		panic(http.ErrAbortHandler) // no answer: the connection is cut
	case rep.status != 0:
		if rep.retryAfter != "" {
			w.Header().Set("Retry-After", rep.retryAfter)
		}
		if rep.location != "" {
			w.Header().Set("Location", rep.location)
		}
		w.WriteHeader(rep.status)
		return
	}
	var p map[string]any
	if err := json.Unmarshal(plain, &p); err != nil {
		ps.t.Errorf("push service: payload %q is not JSON: %v", plain, err)
	}
	ps.mu.Lock()
	s.received = append(s.received, received{payload: p, raw: plain, header: r.Header.Clone(), at: time.Now()})
	ps.mu.Unlock()
	w.Header().Set("Location", ps.srv.URL+"/message/1")
	w.WriteHeader(http.StatusCreated)
	if rep.endless {
		chunk := make([]byte, 32<<10)
		for {
			select {
			case <-r.Context().Done():
				return
			case <-ps.release:
				return
			default:
			}
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}
}

// check verifies the request's headers and its VAPID JWT (RFC 8292): ES256 by the sender's
// key, aud the endpoint's origin, exp within 24 hours, sub a contact.
func (ps *pushService) check(r *http.Request) error {
	if r.Header.Get("Content-Encoding") != "aes128gcm" {
		return fmt.Errorf("Content-Encoding %q", r.Header.Get("Content-Encoding"))
	}
	if ttl, err := strconv.Atoi(r.Header.Get("TTL")); err != nil || ttl < 0 {
		return fmt.Errorf("TTL %q", r.Header.Get("TTL"))
	}
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "vapid ")
	if !ok {
		return fmt.Errorf("Authorization %q is not vapid", r.Header.Get("Authorization"))
	}
	var tok, k string
	for part := range strings.SplitSeq(auth, ",") {
		name, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch name {
		case "t":
			tok = v
		case "k":
			k = v
		}
	}
	if k != ps.vapid {
		return fmt.Errorf("k=%s is not the sender's key %s", k, ps.vapid)
	}
	kb, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil {
		return err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), kb)
	if err != nil {
		return err
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return fmt.Errorf("JWT %q", tok)
	}
	var hdr struct{ Alg, Typ string }
	if err := decodePart(parts[0], &hdr); err != nil || hdr.Alg != "ES256" {
		return fmt.Errorf("JWT header %+v (%v)", hdr, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return fmt.Errorf("JWT signature of %d bytes (%v)", len(sig), err)
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return errors.New("JWT signature does not verify")
	}
	var claims struct {
		Aud string `json:"aud"`
		Exp int64  `json:"exp"`
		Sub string `json:"sub"`
	}
	if err := decodePart(parts[1], &claims); err != nil {
		return err
	}
	if claims.Aud != ps.origin {
		return fmt.Errorf("aud %q, want %q", claims.Aud, ps.origin)
	}
	if exp := time.Unix(claims.Exp, 0); !exp.After(time.Now()) || exp.After(time.Now().Add(24*time.Hour)) {
		return fmt.Errorf("exp %v not within 24 hours", exp)
	}
	if !strings.HasPrefix(claims.Sub, "mailto:") && !strings.HasPrefix(claims.Sub, "https:") {
		return fmt.Errorf("sub %q", claims.Sub)
	}
	if strings.HasPrefix(claims.Sub, "mailto:mailto:") {
		return fmt.Errorf("sub %q has mailto: twice", claims.Sub)
	}
	return nil
}

func decodePart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
