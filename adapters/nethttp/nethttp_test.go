package nethttp_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/nethttp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMount(t *testing.T) {
	h, err := notify.New(notify.Config{Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	tok, _ := h.IssueToken("alice", time.Minute)

	tests := []struct {
		prefix string
		base   string // where the routes end up
	}{
		{"/notify", "/notify"},
		{"notify/", "/notify"},
		{"/api/v1/live", "/api/v1/live"},
		{"", ""},
		{"/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("GET /other", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "other") })
			nethttp.Mount(mux, tt.prefix, h)
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)

			ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+tt.base+"/ws",
				http.Header{"Authorization": {"Bearer " + tok}})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer ws.Close()
			var m map[string]any
			ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			if err := ws.ReadJSON(&m); err != nil || m["op"] != "welcome" {
				t.Fatalf("welcome: %v %v", m, err)
			}

			for path, want := range map[string]int{tt.base + "/client.js": 200, tt.base + "/sw.js": 200, "/other": 200, tt.base + "/missing": 404} {
				r, err := http.Get(srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				r.Body.Close()
				if r.StatusCode != want {
					t.Errorf("GET %s: %d, want %d", path, r.StatusCode, want)
				}
			}
			r, err := http.Post(srv.URL+tt.base+"/ws", "text/plain", nil)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("POST ws: %d, want 405", r.StatusCode)
			}
		})
	}
}
