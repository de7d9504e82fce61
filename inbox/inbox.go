package inbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gonotify/notify"
)

// Notification is one entry of a user's inbox.
type Notification struct {
	// ID identifies the notification within the user's inbox. Notify is idempotent on it: a
	// second Notify with the same ID returns the stored notification and stores and delivers
	// nothing. Default: a random ID. At most 256 bytes.
	ID string `json:"id"`
	// Type names the kind of notification ("comment", "order.shipped"). Required; at most 256
	// bytes.
	Type string `json:"type"`
	// Data is the notification's content: any value encoding/json marshals, as the Data of a
	// [notify.Event]; a json.RawMessage is taken as the JSON it holds. Default: none. Its JSON
	// is at most Config.MaxDataSize bytes.
	//
	// Notify stores Data's JSON. What comes back from the inbox (Notify's result, List, the
	// live [Change]) holds that JSON as a json.RawMessage, whatever type went in: unmarshal it
	// into the type you sent. Data that marshals to JSON null is none (nil).
	Data any `json:"data,omitempty"`
	// CreatedAt is when it happened; the list is ordered by it, newest first. Default: the
	// time of Notify. Kept to the microsecond.
	CreatedAt time.Time `json:"createdAt"`
	// ReadAt, SeenAt and ArchivedAt are when the user read, saw (the list was shown) and
	// archived it; zero while not.
	ReadAt     time.Time `json:"readAt,omitzero"`
	SeenAt     time.Time `json:"seenAt,omitzero"`
	ArchivedAt time.Time `json:"archivedAt,omitzero"`
	// Except leaves one session out of Notify's live delivery, as [notify.Event].Except: the
	// one whose request made the notification, from [notify.SessionFrom]. It is not stored,
	// and what the inbox returns has it empty. Default "": nobody is left out.
	Except string `json:"-"`
}

// State is what a notification's part in the [Counts] depends on.
type State struct{ Read, Seen, Archived bool }

// State returns n's state: which of ReadAt, SeenAt and ArchivedAt are set.
func (n Notification) State() State {
	return State{Read: !n.ReadAt.IsZero(), Seen: !n.SeenAt.IsZero(), Archived: !n.ArchivedAt.IsZero()}
}

// Counts are the numbers a bell shows. Archived notifications count in none of them.
type Counts struct {
	Unread int `json:"unread"` // not read and not archived
	Unseen int `json:"unseen"` // not seen and not archived
	Total  int `json:"total"`  // not archived
}

// Add adds delta times the part of a notification in state st to c. It is the one rule of
// the counts, which every [Store] keeps its counters with: a notification that is archived
// counts in none; one that is not counts in Total, in Unread unless read, and in Unseen unless
// seen. A store adds +1 for a notification it stores, -1 for one it deletes, and for a change
// -1 with the state before and +1 with the state after.
func (c *Counts) Add(st State, delta int) {
	if st.Archived {
		return
	}
	c.Total += delta
	if !st.Read {
		c.Unread += delta
	}
	if !st.Seen {
		c.Unseen += delta
	}
}

// Query selects a page of a user's list, newest first.
type Query struct {
	// Unread lists only unread notifications. Default false: read and unread.
	Unread bool
	// Archived lists the archive instead of the inbox. Default false: the notifications that
	// are not archived.
	Archived bool
	// Limit is the page size: 0 or less means 20, more than 100 means 100.
	Limit int
	// Cursor is the Next of the previous page; "" starts at the newest.
	Cursor string
}

// Page is one page of a list.
type Page struct {
	// Items are the page's notifications, newest first; empty (not nil) when there are none.
	Items []Notification `json:"items"`
	// Next is the cursor of the next page; "" on the last page.
	Next string `json:"next,omitempty"`
}

// Op names a change, in the live events and the HTTP endpoints.
type Op string

// The changes a user makes to their notifications.
const (
	OpNew       Op = "new" // a notification arrived (live events only)
	OpRead      Op = "read"
	OpUnread    Op = "unread"
	OpReadAll   Op = "read-all"
	OpSeen      Op = "seen"
	OpArchive   Op = "archive"
	OpUnarchive Op = "unarchive"
	OpDelete    Op = "delete"
)

// EventType is the type of the live events an inbox sends through the hub.
const EventType = "inbox"

// Change is the data of a live [EventType] event: what changed and the user's counts after.
type Change struct {
	// Op is what happened.
	Op Op `json:"op"`
	// IDs are the notifications that changed (none for read-all: every unread one was read).
	IDs []string `json:"ids,omitempty"`
	// Notification is the new notification of OpNew.
	Notification *Notification `json:"notification,omitempty"`
	// Counts are the user's counts after the change.
	Counts Counts `json:"counts"`
}

// Store keeps the notifications of every user. Notify hands a store a notification's Data as
// a json.RawMessage (or nil), and a store returns it so. Every method takes the user: a store
// finds a notification by user and ID together, so that another user's ID is not found by the
// same path as an ID that does not exist. The counts a store returns are kept with the rows
// (read in O(1) or an index lookup) by the rule of [Counts.Add], never negative. A change that
// changes nothing (read twice) is not an error and leaves the counts as they are.
// Implementations are safe for concurrent use; inboxtest.Run holds them to this contract.
type Store interface {
	// Insert stores n (its ID, Type and CreatedAt set) unless the user has a notification
	// with n.ID, and then drops the user's oldest notifications beyond max. It returns the
	// notification as stored, whether this call created it, and the counts after.
	Insert(ctx context.Context, user string, n Notification, max int) (Notification, bool, Counts, error)
	// List returns up to q.Limit of the user's notifications after the cursor, newest first,
	// filtered by q.Unread and q.Archived (q.Cursor is already decoded into after).
	List(ctx context.Context, user string, q Query, after Cursor) ([]Notification, error)
	// Counts returns the user's counts; all zero for a user with no notification.
	Counts(ctx context.Context, user string) (Counts, error)
	// Change applies op (OpRead, OpUnread, OpSeen, OpArchive, OpUnarchive or OpDelete) at
	// time at to the user's notifications with the given distinct IDs. When one of them is not
	// the user's it changes nothing and returns ErrNotFound. It returns the IDs whose state
	// changed and the counts after.
	Change(ctx context.Context, user string, op Op, ids []string, at time.Time) ([]string, Counts, error)
	// ReadAll marks every unread notification of the user read at time at, and returns how
	// many changed and the counts after.
	ReadAll(ctx context.Context, user string, at time.Time) (int, Counts, error)
	// Expire deletes the notifications of every user created before the given time, and
	// returns how many.
	Expire(ctx context.Context, before time.Time) (int, error)
	// CursorKey returns the key that signs the list's cursors when Config.CursorKey is not
	// set: at least [MinCursorKeyLen] random bytes, made the first time it is asked for and
	// the same from then on for every process using the store's data, so that a cursor one
	// node handed out is accepted by the others.
	CursorKey(ctx context.Context) ([]byte, error)
}

// Config configures an [Inbox]. Zero values mean the documented defaults.
type Config struct {
	// Store keeps the notifications. Default: a new [MemoryStore], for one process and tests
	// (a restart loses them); adapters/pginbox keeps them in PostgreSQL.
	Store Store
	// MaxPerUser bounds a user's notifications, archived ones included: past it the oldest
	// are dropped. Default 1000.
	MaxPerUser int
	// MaxAge is how long a notification is kept. Default 90 days.
	MaxAge time.Duration
	// ExpireInterval is how often notifications older than MaxAge are deleted. Default 1 hour.
	ExpireInterval time.Duration
	// MaxDataSize bounds the JSON of a notification's Data, in bytes. Default 4096.
	MaxDataSize int
	// RequestTimeout bounds each request to the HTTP handler: a store that does not answer in
	// time makes it answer 503. Default 10 seconds.
	RequestTimeout time.Duration
	// RequestRate and RequestBurst bound each user's requests to the HTTP handler on a node:
	// RequestBurst at once, then RequestRate per second. Past them a request is answered 429
	// rate_limited with Retry-After. The service worker's push/ack, which has no token, is not
	// counted. Defaults: 10 per second after a burst of 50.
	RequestRate  float64
	RequestBurst int
	// CursorKey signs the cursors of the list (HMAC-SHA256), so that List refuses a cursor it
	// did not hand out to the user (ErrBadCursor; 400 over HTTP). At least 32 bytes, secret,
	// and the same on every node serving the same users. Default: the store's key
	// ([Store].CursorKey), which every node sharing the store shares: adapters/pginbox keeps
	// one in its tables, MemoryStore makes one per store. Changing it refuses the cursors
	// handed out before: a client whose next page is refused starts again from the top.
	CursorKey []byte
	// Logger receives the live updates that could not be sent, the store's failures that the
	// HTTP handler answered with 503, and the expiry's failures. Default: slog.Default().
	Logger *slog.Logger

	// Push sends Web Push messages (adapters/webpush's Sender): when set, a notification that
	// reached no live session of its user (its Report's Nodes is 0) is also pushed to each of
	// the user's subscriptions, unless the user muted its type; the Store must then implement
	// [SubscriptionStore]. Default nil: no push, and the push endpoints answer 404.
	Push Pusher
	// MaxSubscriptions bounds a user's push subscriptions (browsers, devices): past it adding
	// one is refused with ErrTooMany. Default 10.
	MaxSubscriptions int
	// PublicPath is the path at which browsers reach [Inbox.Handler], ending in a slash: the
	// push payload's ackURL is PublicPath + "push/ack". The handler cannot learn it from a
	// push, which has no request. Default "/notify/inbox/", the browser client's default.
	PublicPath string
}

// Defaults of [Config] and [Query].
const (
	DefaultMaxPerUser     = 1000
	DefaultMaxAge         = 90 * 24 * time.Hour
	DefaultExpireInterval = time.Hour
	DefaultMaxDataSize    = 4096
	DefaultRequestTimeout = 10 * time.Second
	DefaultRequestRate    = 10
	DefaultRequestBurst   = 50
	DefaultLimit          = 20
	MaxLimit              = 100
)

// MaxIDs bounds the IDs of one change.
const MaxIDs = 1000

const maxIDLen = 256

// Inbox keeps every user's notifications in a [Store] and tells every session of the user,
// through the hub, about each new notification and each change. All methods are safe for
// concurrent use.
type Inbox struct {
	hub *notify.Hub
	cfg Config
	now func() time.Time

	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup // the expiry goroutine

	limit *limiter // the HTTP handler's requests per user

	// keyMu guards key: Config.CursorKey, or the store's key once it was read.
	keyMu sync.Mutex
	key   []byte
}

// New returns an inbox on hub configured by cfg, or the configuration mistake it found
// (wrapping notify.ErrConfig). It starts a goroutine that deletes expired notifications every
// cfg.ExpireInterval; Close stops it.
func New(hub *notify.Hub, cfg Config) (*Inbox, error) {
	if hub == nil {
		return nil, fmt.Errorf("%w: inbox needs a hub", notify.ErrConfig)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"MaxPerUser", int64(cfg.MaxPerUser)}, {"MaxAge", int64(cfg.MaxAge)},
		{"ExpireInterval", int64(cfg.ExpireInterval)}, {"MaxDataSize", int64(cfg.MaxDataSize)},
		{"RequestTimeout", int64(cfg.RequestTimeout)}, {"RequestBurst", int64(cfg.RequestBurst)}} {
		if f.v < 0 {
			return nil, fmt.Errorf("%w: inbox %s is negative", notify.ErrConfig, f.name)
		}
	}
	if n := len(cfg.CursorKey); n > 0 && n < MinCursorKeyLen {
		return nil, fmt.Errorf("%w: inbox CursorKey is %d bytes, want at least %d random bytes (or none: the store's key)",
			notify.ErrConfig, n, MinCursorKeyLen)
	}
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore()
	}
	if cfg.MaxPerUser == 0 {
		cfg.MaxPerUser = DefaultMaxPerUser
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.ExpireInterval == 0 {
		cfg.ExpireInterval = DefaultExpireInterval
	}
	if cfg.MaxDataSize == 0 {
		cfg.MaxDataSize = DefaultMaxDataSize
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RequestRate < 0 || math.IsNaN(cfg.RequestRate) || math.IsInf(cfg.RequestRate, 0) {
		return nil, fmt.Errorf("%w: inbox RequestRate is %v, want a positive number of requests per second", notify.ErrConfig, cfg.RequestRate)
	}
	if cfg.RequestRate == 0 {
		cfg.RequestRate = DefaultRequestRate
	}
	if cfg.RequestBurst == 0 {
		cfg.RequestBurst = DefaultRequestBurst
	}
	if cfg.MaxSubscriptions < 0 {
		return nil, fmt.Errorf("%w: inbox MaxSubscriptions is negative", notify.ErrConfig)
	}
	if cfg.MaxSubscriptions == 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if cfg.PublicPath == "" {
		cfg.PublicPath = DefaultPublicPath
	}
	if !strings.HasPrefix(cfg.PublicPath, "/") || !strings.HasSuffix(cfg.PublicPath, "/") {
		return nil, fmt.Errorf("%w: inbox PublicPath %q must begin and end with a slash", notify.ErrConfig, cfg.PublicPath)
	}
	if _, ok := cfg.Store.(SubscriptionStore); cfg.Push != nil && !ok {
		return nil, fmt.Errorf("%w: inbox Push needs a Store that implements inbox.SubscriptionStore; %T does not", notify.ErrConfig, cfg.Store)
	}
	ib := &Inbox{hub: hub, cfg: cfg, now: time.Now, stop: make(chan struct{}), key: cfg.CursorKey}
	ib.limit = newLimiter(cfg.RequestRate, cfg.RequestBurst, ib.now)
	ib.wg.Add(1)
	go ib.expireLoop()
	return ib, nil
}

// Close stops the expiry goroutine and waits for it. It does not close the store. It is safe
// to call more than once.
func (ib *Inbox) Close() error {
	ib.once.Do(func() { close(ib.stop) })
	ib.wg.Wait()
	return nil
}

func (ib *Inbox) expireLoop() {
	defer ib.wg.Done()
	t := time.NewTicker(ib.cfg.ExpireInterval)
	defer t.Stop()
	for {
		select {
		case <-ib.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if _, err := ib.Expire(ctx); err != nil {
				ib.cfg.Logger.Warn("notify: inbox expiry failed", "err", err)
			}
			cancel()
		}
	}
}

// Expire deletes every notification older than Config.MaxAge now, and returns how many. The
// inbox calls it every Config.ExpireInterval.
func (ib *Inbox) Expire(ctx context.Context) (int, error) {
	n, err := ib.cfg.Store.Expire(ctx, ib.now().Add(-ib.cfg.MaxAge))
	return n, ib.storeErr(err)
}

// Notify stores n in the user's inbox and delivers it live to every session of the user, as
// an [EventType] event with [OpNew]. It returns the notification as stored. With an ID the
// user's inbox already holds (a retry), it returns the stored notification and stores and
// delivers nothing. When the store fails nothing is delivered and the error wraps
// ErrUnavailable. When the notification was stored but the hub could not send it (a broker
// that is down), it returns the notification and the hub's error: sessions get it when they
// next fetch the list.
//
// It returns the live delivery's [notify.Report] too (zero for a retry, which delivers
// nothing): its Nodes is 0 when no session of the user received it anywhere in the cluster.
// Then, with Config.Push set, the notification is also pushed to each of the user's
// subscriptions (unless the user muted its type), without waiting for the push service.
// Only then: a visible tab shows it itself, and a push would show it twice; a tab open but
// hidden has a session, gets it live and may show a system notification of its own.
func (ib *Inbox) Notify(ctx context.Context, userID string, n Notification) (Notification, notify.Report, error) {
	if err := validUser(userID); err != nil {
		return Notification{}, notify.Report{}, err
	}
	if n.Type == "" || len(n.Type) > maxIDLen || !utf8.ValidString(n.Type) {
		return Notification{}, notify.Report{}, fmt.Errorf("%w: type must be 1 to %d bytes of UTF-8", ErrInvalid, maxIDLen)
	}
	if len(n.ID) > maxIDLen || !utf8.ValidString(n.ID) {
		return Notification{}, notify.Report{}, fmt.Errorf("%w: ID longer than %d bytes or not UTF-8", ErrInvalid, maxIDLen)
	}
	data, err := encodeData(n.Data)
	if err != nil {
		return Notification{}, notify.Report{}, err
	}
	if len(data) > ib.cfg.MaxDataSize {
		return Notification{}, notify.Report{}, fmt.Errorf("%w: data is %d bytes, at most %d", ErrTooLarge, len(data), ib.cfg.MaxDataSize)
	}
	n.Data = nil // not a nil json.RawMessage, which JSON would show as "data":null
	if data != nil {
		n.Data = data
	}
	if n.ID == "" {
		n.ID = randomID()
	}
	if n.CreatedAt.IsZero() {
		n.CreatedAt = ib.now()
	}
	// Microseconds: what PostgreSQL keeps, and what cursors hold.
	n.CreatedAt = n.CreatedAt.UTC().Truncate(time.Microsecond)
	n.ReadAt, n.SeenAt, n.ArchivedAt = time.Time{}, time.Time{}, time.Time{}
	except := n.Except
	n.Except = ""
	stored, created, counts, err := ib.cfg.Store.Insert(ctx, userID, n, ib.cfg.MaxPerUser)
	if err != nil {
		return Notification{}, notify.Report{}, ib.storeErr(err)
	}
	if !created {
		return stored, notify.Report{}, nil
	}
	rep, err := ib.hub.Send(ctx, userID, notify.Event{Type: EventType,
		Data: Change{Op: OpNew, Notification: &stored, Counts: counts}, Except: except})
	if err != nil {
		return stored, rep, fmt.Errorf("notify: inbox: stored, but not delivered live: %w", err)
	}
	if rep.Nodes == 0 && ib.cfg.Push != nil {
		ib.pushOut(ctx, userID, stored)
	}
	return stored, rep, nil
}

// List returns a page of the user's notifications, newest first. A cursor that List did not
// hand out to this user gives ErrBadCursor.
func (ib *Inbox) List(ctx context.Context, userID string, q Query) (Page, error) {
	if err := validUser(userID); err != nil {
		return Page{}, err
	}
	key, err := ib.cursorKey(ctx)
	if err != nil {
		return Page{}, err
	}
	after, err := decodeCursor(key, userID, q.Cursor)
	if err != nil {
		return Page{}, err
	}
	q.Limit = clampLimit(q.Limit)
	limit := q.Limit
	q.Limit++ // one more tells whether there is a next page
	items, err := ib.cfg.Store.List(ctx, userID, q, after)
	if err != nil {
		return Page{}, ib.storeErr(err)
	}
	p := Page{Items: items}
	if len(items) > limit {
		p.Items = items[:limit]
		last := p.Items[limit-1]
		p.Next = encodeCursor(key, userID, Cursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	if p.Items == nil {
		p.Items = []Notification{}
	}
	return p, nil
}

// cursorKey returns Config.CursorKey, or else the store's key, read once.
func (ib *Inbox) cursorKey(ctx context.Context) ([]byte, error) {
	ib.keyMu.Lock()
	defer ib.keyMu.Unlock()
	if ib.key != nil {
		return ib.key, nil
	}
	key, err := ib.cfg.Store.CursorKey(ctx)
	if err != nil {
		return nil, ib.storeErr(err)
	}
	if len(key) < MinCursorKeyLen {
		return nil, fmt.Errorf("%w: the store's cursor key is %d bytes, want at least %d", ErrUnavailable, len(key), MinCursorKeyLen)
	}
	ib.key = key
	return key, nil
}

// encodeData returns the JSON of a notification's data, nil for none.
func encodeData(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		// A RawMessage that is not JSON, a channel, a NaN: nothing a client could read.
		return nil, fmt.Errorf("%w: data cannot be encoded as JSON: %w", ErrInvalid, err)
	}
	if string(b) == "null" {
		return nil, nil
	}
	return b, nil
}

func clampLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	}
	return n
}

// Counts returns the user's unread, unseen and total counts.
func (ib *Inbox) Counts(ctx context.Context, userID string) (Counts, error) {
	if err := validUser(userID); err != nil {
		return Counts{}, err
	}
	c, err := ib.cfg.Store.Counts(ctx, userID)
	return c, ib.storeErr(err)
}

// MarkRead marks the notifications read. See [Inbox.Change].
func (ib *Inbox) MarkRead(ctx context.Context, userID string, ids ...string) (Counts, error) {
	return ib.Change(ctx, userID, OpRead, ids...)
}

// MarkUnread marks the notifications unread. See [Inbox.Change].
func (ib *Inbox) MarkUnread(ctx context.Context, userID string, ids ...string) (Counts, error) {
	return ib.Change(ctx, userID, OpUnread, ids...)
}

// MarkSeen marks the notifications seen. See [Inbox.Change].
func (ib *Inbox) MarkSeen(ctx context.Context, userID string, ids ...string) (Counts, error) {
	return ib.Change(ctx, userID, OpSeen, ids...)
}

// Archive moves the notifications to the archive. See [Inbox.Change].
func (ib *Inbox) Archive(ctx context.Context, userID string, ids ...string) (Counts, error) {
	return ib.Change(ctx, userID, OpArchive, ids...)
}

// Unarchive moves the notifications back to the inbox. See [Inbox.Change].
func (ib *Inbox) Unarchive(ctx context.Context, userID string, ids ...string) (Counts, error) {
	return ib.Change(ctx, userID, OpUnarchive, ids...)
}

// Delete deletes the notifications. See [Inbox.Change].
func (ib *Inbox) Delete(ctx context.Context, userID string, ids ...string) (Counts, error) {
	return ib.Change(ctx, userID, OpDelete, ids...)
}

// Change applies op to the user's notifications with the given IDs (1 to [MaxIDs]; repeated
// IDs count once) and returns the user's counts after. When any ID is not one of the user's
// notifications, nothing changes and the error is ErrNotFound. A change that changes nothing
// (reading what is read) is not an error. When something changed, every session of the user
// gets an [EventType] event with the op, the IDs that changed and the counts.
func (ib *Inbox) Change(ctx context.Context, userID string, op Op, ids ...string) (Counts, error) {
	if err := validUser(userID); err != nil {
		return Counts{}, err
	}
	switch op {
	case OpRead, OpUnread, OpSeen, OpArchive, OpUnarchive, OpDelete:
	default:
		return Counts{}, fmt.Errorf("%w: unknown op %q", ErrInvalid, op)
	}
	ids = distinct(ids)
	if len(ids) == 0 || len(ids) > MaxIDs {
		return Counts{}, fmt.Errorf("%w: 1 to %d IDs", ErrInvalid, MaxIDs)
	}
	for _, id := range ids {
		if id == "" || len(id) > maxIDLen {
			// It cannot be one of the user's: the answer of an ID that does not exist.
			return Counts{}, ErrNotFound
		}
	}
	changed, counts, err := ib.cfg.Store.Change(ctx, userID, op, ids, ib.now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return Counts{}, ib.storeErr(err)
	}
	if len(changed) > 0 {
		ib.live(ctx, userID, Change{Op: op, IDs: changed, Counts: counts})
	}
	return counts, nil
}

// MarkAllRead marks every notification of the user read and returns the counts after.
func (ib *Inbox) MarkAllRead(ctx context.Context, userID string) (Counts, error) {
	if err := validUser(userID); err != nil {
		return Counts{}, err
	}
	n, counts, err := ib.cfg.Store.ReadAll(ctx, userID, ib.now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return Counts{}, ib.storeErr(err)
	}
	if n > 0 {
		ib.live(ctx, userID, Change{Op: OpReadAll, Counts: counts})
	}
	return counts, nil
}

// live tells the user's sessions about a change made in the store. The store is the truth: a
// session that misses the event has its counts right on its next fetch, so a hub error is
// logged, not returned for a change that was made.
func (ib *Inbox) live(ctx context.Context, userID string, c Change) {
	if _, err := ib.hub.Send(ctx, userID, notify.Event{Type: EventType, Data: c, Except: exceptOf(ctx)}); err != nil {
		ib.cfg.Logger.Warn("notify: inbox change not delivered live", "user", userID, "op", c.Op, "err", err)
	}
}

// storeErr wraps a store's failure in ErrUnavailable, keeping ErrNotFound as it is.
func (ib *Inbox) storeErr(err error) error {
	if err == nil || errors.Is(err, ErrNotFound) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func validUser(userID string) error {
	if userID == "" {
		return fmt.Errorf("%w: %w", ErrInvalid, notify.ErrInvalidUser)
	}
	return nil
}

func distinct(ids []string) []string {
	if len(ids) < 2 {
		return ids
	}
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
