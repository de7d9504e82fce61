package pginbox

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/gonotify/notify/inbox"
)

var _ inbox.SubscriptionStore = (*Store)(nil)

// AddSubscription implements [inbox.SubscriptionStore]. A transaction-scoped advisory lock on
// the user serializes the user's additions, so that two at once cannot pass the cap together.
func (s *Store) AddSubscription(ctx context.Context, sub inbox.Subscription, max int) (inbox.Subscription, bool, error) {
	created := false
	err := s.retry(ctx, func(tx pgx.Tx) error {
		created = false
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))`, s.q.subs, sub.User); err != nil {
			return err
		}
		var id string
		err := tx.QueryRow(ctx, `UPDATE `+s.q.subs+` SET p256dh = $3, auth = $4 WHERE user_id = $1 AND endpoint = $2 RETURNING id, created_at`,
			sub.User, sub.Endpoint, sub.P256dh, sub.Auth).Scan(&id, &sub.CreatedAt)
		if err == nil {
			sub.ID = id
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+s.q.subs+` WHERE user_id = $1`, sub.User).Scan(&n); err != nil {
			return err
		}
		if n >= max {
			return inbox.ErrTooMany
		}
		_, err = tx.Exec(ctx, `INSERT INTO `+s.q.subs+` (user_id, endpoint, id, p256dh, auth, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			sub.User, sub.Endpoint, sub.ID, sub.P256dh, sub.Auth, sub.CreatedAt)
		created = err == nil
		return err
	})
	if err != nil {
		return inbox.Subscription{}, false, err
	}
	sub.CreatedAt = sub.CreatedAt.UTC()
	return sub, created, nil
}

// RemoveSubscription implements [inbox.SubscriptionStore].
func (s *Store) RemoveSubscription(ctx context.Context, user, endpoint string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM `+s.q.subs+` WHERE user_id = $1 AND endpoint = $2`, user, endpoint)
	return err
}

// Subscriptions implements [inbox.SubscriptionStore].
func (s *Store) Subscriptions(ctx context.Context, user string) ([]inbox.Subscription, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, endpoint, p256dh, auth, created_at FROM `+s.q.subs+
		` WHERE user_id = $1 ORDER BY created_at, id`, user)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (inbox.Subscription, error) {
		sub := inbox.Subscription{User: user}
		err := r.Scan(&sub.ID, &sub.Endpoint, &sub.P256dh, &sub.Auth, &sub.CreatedAt)
		sub.CreatedAt = sub.CreatedAt.UTC()
		return sub, err
	})
}

// Muted implements [inbox.SubscriptionStore].
func (s *Store) Muted(ctx context.Context, user string) ([]string, error) {
	var types []string
	err := s.pool.QueryRow(ctx, `SELECT types FROM `+s.q.muted+` WHERE user_id = $1`, user).Scan(&types)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return types, err
}

// SetMuted implements [inbox.SubscriptionStore].
func (s *Store) SetMuted(ctx context.Context, user string, types []string) error {
	if len(types) == 0 {
		_, err := s.pool.Exec(ctx, `DELETE FROM `+s.q.muted+` WHERE user_id = $1`, user)
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.q.muted+` (user_id, types) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET types = EXCLUDED.types`, user, types)
	return err
}
