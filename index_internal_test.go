package notify

import (
	"slices"
	"testing"
)

// TestIndex: sessions added and removed in any order leave all with every remaining session
// once, each at its slot, and each user with exactly its remaining sessions.
func TestIndex(t *testing.T) {
	users := []string{"a", "a", "b", "c", "a", "b"}
	for _, tc := range []struct {
		name   string
		remove []int // indexes into users, in removal order
	}{
		{"none", nil},
		{"last", []int{5}},
		{"first", []int{0}},
		{"middle of a user", []int{1}},
		{"a user entirely", []int{0, 4, 1}},
		{"everyone", []int{3, 0, 5, 1, 2, 4}},
		{"twice", []int{2, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newIndex()
			conns := make([]*session, len(users))
			for i, u := range users {
				conns[i] = &session{user: u}
				x.add(conns[i])
				x.subscribe(conns[i], "t", false)
			}
			gone := map[*session]bool{}
			for _, i := range tc.remove {
				x.remove(conns[i])
				gone[conns[i]] = true
			}
			want := map[string][]*session{}
			var all []*session
			for _, c := range conns {
				if !gone[c] {
					want[c.user] = append(want[c.user], c)
					all = append(all, c)
				}
			}
			if len(x.all) != len(all) || len(x.member) != len(all) || len(x.topics["t"]) != len(all) {
				t.Fatalf("all has %d sessions, member %d, the topic %d; want %d",
					len(x.all), len(x.member), len(x.topics["t"]), len(all))
			}
			for i, c := range x.all {
				if m := x.member[c]; m == nil || m.slot != i {
					t.Errorf("session of %s at %d has membership %+v", c.user, i, m)
				}
				if gone[c] || !slices.Contains(all, c) {
					t.Errorf("all holds a removed session of %s", c.user)
				}
			}
			if len(x.users) != len(want) {
				t.Errorf("%d users indexed, want %d", len(x.users), len(want))
			}
			for u, w := range want {
				got := x.users[u]
				if len(got) != len(w) {
					t.Errorf("user %s: %d sessions, want %d", u, len(got), len(w))
				}
				for _, c := range w {
					if !slices.Contains(got, c) {
						t.Errorf("user %s: a session is missing", u)
					}
				}
			}
		})
	}
}

// TestIndexSubscriptions: a session's subscriptions, who made them, and what a removed session
// can no longer do.
func TestIndexSubscriptions(t *testing.T) {
	x := newIndex()
	c := &session{user: "a"}
	x.add(c)
	for _, tc := range []struct {
		topic    string
		byServer bool
		want     bool
	}{{"own", false, true}, {"own", false, false}, {"app", true, true}, {"both", false, true}, {"both", true, false}} {
		if got := x.subscribe(c, tc.topic, tc.byServer); got != tc.want {
			t.Fatalf("subscribe(%s, %v) = %v, want %v", tc.topic, tc.byServer, got, tc.want)
		}
	}
	if got := x.clientTopics(c); !slices.Equal(got, []string{"own"}) {
		t.Fatalf("clientTopics = %v, want [own]: an application's subscribe makes a topic the application's", got)
	}
	if sub, n := x.subscription(c, "app"); !sub || n != 3 {
		t.Fatalf("subscription(app) = %v, %d; want true, 3", sub, n)
	}
	if !x.unsubscribe(c, "own") || x.unsubscribe(c, "own") {
		t.Fatal("unsubscribe: want true once, then false")
	}
	topics := x.remove(c)
	slices.Sort(topics)
	if !slices.Equal(topics, []string{"app", "both"}) || len(x.topics) != 0 {
		t.Fatalf("remove returned %v and left topics %v", topics, x.topics)
	}
	if x.subscribe(c, "late", false) || x.remove(c) != nil {
		t.Fatal("a removed session subscribed or was removed again")
	}
}
