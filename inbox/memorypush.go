package inbox

import (
	"context"
	"slices"
	"sync"
)

// memPush is MemoryStore's push state: every user's subscriptions (oldest first) and muted
// types. mu guards both maps and what they hold.
type memPush struct {
	mu    sync.Mutex
	subs  map[string][]Subscription
	muted map[string][]string
}

// AddSubscription implements [SubscriptionStore].
func (s *MemoryStore) AddSubscription(ctx context.Context, sub Subscription, max int) (Subscription, bool, error) {
	if err := ctx.Err(); err != nil {
		return Subscription{}, false, err
	}
	p := &s.push
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.subs[sub.User]
	for i, old := range list {
		if old.Endpoint == sub.Endpoint {
			list[i].P256dh, list[i].Auth = sub.P256dh, sub.Auth
			return list[i], false, nil
		}
	}
	if len(list) >= max {
		return Subscription{}, false, ErrTooMany
	}
	if p.subs == nil {
		p.subs = make(map[string][]Subscription)
	}
	p.subs[sub.User] = append(list, sub)
	return sub, true, nil
}

// RemoveSubscription implements [SubscriptionStore].
func (s *MemoryStore) RemoveSubscription(ctx context.Context, user, endpoint string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := &s.push
	p.mu.Lock()
	defer p.mu.Unlock()
	list := slices.DeleteFunc(p.subs[user], func(x Subscription) bool { return x.Endpoint == endpoint })
	if len(list) == 0 {
		delete(p.subs, user)
	} else {
		p.subs[user] = list
	}
	return nil
}

// Subscriptions implements [SubscriptionStore].
func (s *MemoryStore) Subscriptions(ctx context.Context, user string) ([]Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := &s.push
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.subs[user]), nil
}

// Muted implements [SubscriptionStore].
func (s *MemoryStore) Muted(ctx context.Context, user string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := &s.push
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.muted[user]), nil
}

// SetMuted implements [SubscriptionStore].
func (s *MemoryStore) SetMuted(ctx context.Context, user string, types []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := &s.push
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(types) == 0 {
		delete(p.muted, user)
		return nil
	}
	if p.muted == nil {
		p.muted = make(map[string][]string)
	}
	p.muted[user] = slices.Clone(types)
	return nil
}
