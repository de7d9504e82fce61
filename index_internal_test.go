package notify

import (
	"slices"
	"testing"
)

// TestIndex: sessions added and removed in any order leave conns with every remaining session
// once, each at its pos, and each user with exactly its remaining sessions.
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
			h := &Hub{users: make(map[string][]*conn)}
			conns := make([]*conn, len(users))
			for i, u := range users {
				conns[i] = &conn{user: u}
				h.index(conns[i])
			}
			gone := map[*conn]bool{}
			for _, i := range tc.remove {
				h.unindex(conns[i])
				gone[conns[i]] = true
			}
			want := map[string][]*conn{}
			var all []*conn
			for _, c := range conns {
				if !gone[c] {
					want[c.user] = append(want[c.user], c)
					all = append(all, c)
				}
			}
			if len(h.conns) != len(all) {
				t.Fatalf("conns has %d sessions, want %d", len(h.conns), len(all))
			}
			for i, c := range h.conns {
				if c.pos != i {
					t.Errorf("session of %s at %d has pos %d", c.user, i, c.pos)
				}
				if gone[c] || !slices.Contains(all, c) {
					t.Errorf("conns holds a removed session of %s", c.user)
				}
			}
			if len(h.users) != len(want) {
				t.Errorf("%d users indexed, want %d", len(h.users), len(want))
			}
			for u, w := range want {
				got := h.users[u]
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
