package webpush

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	webpushgo "github.com/SherClockHolmes/webpush-go"

	"github.com/gonotify/notify/inbox"
)

// work is a worker: it sends the queue's pushes until Close closes it.
func (s *Sender) work() {
	for j := range s.queue {
		s.send(j)
	}
}

// send makes one attempt at j and decides what follows: done, retried, or the subscription
// deleted.
func (s *Sender) send(j *job) {
	if s.ctx.Err() != nil {
		s.stats.dropped.Add(1)
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	sub := &webpushgo.Subscription{Endpoint: j.sub.Endpoint, Keys: webpushgo.Keys{P256dh: j.sub.P256dh, Auth: j.sub.Auth}}
	resp, err := webpushgo.SendNotificationWithContext(ctx, j.payload, sub, s.options(j))
	log := s.cfg.Logger.With("user", j.sub.User, "endpoint", inbox.ShortEndpoint(j.sub.Endpoint))
	if err != nil {
		// client.Do's errors are *url.Error; any other is webpush-go's own, before sending
		// (keys it cannot use): trying again cannot help.
		ue, sent := errors.AsType[*url.Error](err)
		if sent {
			err = ue.Err // without the URL, which holds the endpoint's secret path
		}
		switch {
		case s.ctx.Err() != nil:
			s.stats.dropped.Add(1)
		case !sent || errors.Is(err, ErrRefused) || errors.Is(err, errNotPublic):
			log.Warn("notify: webpush: push refused here", "err", err)
			s.stats.failed.Add(1)
		default: // a timeout, a connection refused or reset
			s.again(j, 0, log, err.Error())
		}
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, s.cfg.MaxResponseSize))
	_ = resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		s.stats.sent.Add(1)
	case code == http.StatusNotFound || code == http.StatusGone:
		s.stats.gone.Add(1)
		log.Info("notify: webpush: subscription expired, deleted", "status", code)
		if j.gone != nil {
			gctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
			j.gone(gctx)
			cancel()
		}
	case code == http.StatusRequestEntityTooLarge:
		s.stats.refused.Add(1)
		log.Warn("notify: webpush: the push service refused the payload as too large", "bytes", len(j.payload))
	case code == http.StatusTooManyRequests || code >= 500:
		s.again(j, retryAfter(resp.Header.Get("Retry-After"), time.Now()), log, resp.Status)
	default: // a redirect (not followed), 400, 401, 403...
		log.Warn("notify: webpush: the push service refused the push", "status", code)
		s.stats.failed.Add(1)
	}
}

// again schedules j's next attempt after wait (none: exponential backoff with jitter), or
// gives it up when it was tried Config.Retries times or would arrive after it expires.
func (s *Sender) again(j *job, wait time.Duration, log interface{ Warn(string, ...any) }, why string) {
	if j.attempts >= s.cfg.Retries {
		s.stats.failed.Add(1)
		log.Warn("notify: webpush: push failed, not retried again", "attempts", j.attempts+1, "last", why)
		return
	}
	if wait <= 0 {
		base := time.Second << j.attempts
		wait = min(base+rand.N(base/2), time.Minute)
	}
	wait = min(wait, s.cfg.MaxRetryAfter)
	j.due = time.Now().Add(wait)
	if !j.expires.IsZero() && j.due.After(j.expires) {
		s.stats.failed.Add(1)
		log.Warn("notify: webpush: push failed; the notification expires before a retry", "last", why)
		return
	}
	j.attempts++
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.stats.dropped.Add(1)
		return
	}
	if s.onRetry != nil {
		s.onRetry(wait) // before the retrier has it: its next attempt could come first
	}
	select {
	case s.retry <- j:
		s.stats.retried.Add(1)
	default:
		s.stats.dropped.Add(1)
		log.Warn("notify: webpush: too many pushes waiting to be retried; dropped", "last", why)
	}
}

// retrier holds the pushes waiting to be retried, earliest first, and queues each when its
// time comes. It returns when Close closes the retry channel, dropping what waits.
func (s *Sender) retrier() {
	var pending []*job // by due, ascending
	for {
		var timer <-chan time.Time
		if len(pending) > 0 {
			timer = s.after(time.Until(pending[0].due))
		}
		select {
		case j, ok := <-s.retry:
			if !ok {
				s.stats.dropped.Add(int64(len(pending)))
				return
			}
			i, _ := slices.BinarySearchFunc(pending, j.due, func(a *job, t time.Time) int { return a.due.Compare(t) })
			pending = slices.Insert(pending, i, j)
		case <-timer:
			// The first is due (the timer was set for it), and so is any due by now.
			n := 1
			for n < len(pending) && !pending[n].due.After(time.Now()) {
				n++
			}
			for _, j := range pending[:n] {
				s.requeue(j)
			}
			pending = slices.Delete(pending, 0, n)
		}
	}
}

// requeue puts a push that waited back on the queue, or drops it when the queue is full or
// closed.
func (s *Sender) requeue(j *job) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.stats.dropped.Add(1)
		return
	}
	select {
	case s.queue <- j:
	default:
		s.stats.dropped.Add(1)
		s.cfg.Logger.Warn("notify: webpush: queue full, retry dropped", "endpoint", inbox.ShortEndpoint(j.sub.Endpoint))
	}
}

// retryAfter returns the wait a Retry-After header asks for (seconds or an HTTP date), 0
// when none or malformed.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, 1<<20)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
