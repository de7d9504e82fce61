package webpush

import "time"

// NewWithClock is New with the retries' clock and a window on the waits they schedule.
func NewWithClock(cfg Config, after func(time.Duration) <-chan time.Time, onRetry func(time.Duration)) (*Sender, error) {
	s, err := newSender(cfg)
	if err != nil {
		return nil, err
	}
	s.after, s.onRetry = after, onRetry
	s.start()
	return s, nil
}
