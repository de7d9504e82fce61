package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/labstack/echo/v4"
)

// npmBundle returns the directory of the page client/ci.sh bundled from the packed npm package
// (client/npmtest): $NOTIFY_NPM_BUNDLE when set (client/ci.sh sets it), otherwise one built now
// with `client/ci.sh --build-only`, which needs node, npm and the npm registry. Without node or
// npm the test skips, unless NOTIFY_REQUIRE_SERVICES=1.
func npmBundle(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("NOTIFY_NPM_BUNDLE"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "page.js")); err != nil {
			t.Fatalf("NOTIFY_NPM_BUNDLE=%s holds no bundled page: %v", dir, err)
		}
		return dir
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("NOTIFY_REQUIRE_SERVICES") == "1" {
				t.Fatalf("%s is required (NOTIFY_REQUIRE_SERVICES=1) to pack and bundle the npm package: %v", tool, err)
			}
			t.Skipf("%s not found (%v): the npm package's page cannot be bundled; run client/ci.sh with Node.js installed", tool, err)
		}
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "../client/ci.sh", "--build-only", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("client/ci.sh --build-only: %v\n%s", err, out)
	}
	return dir
}

// The npm package as a bundler sees it: a page bundled by esbuild from the packed tarball, with
// React and React DOM from npm, connects to the example app. The core API: connected() resolves
// with the user, an inbox request for an unknown id rejects with a NotifyError of status 404.
// The React hooks: useNotify's state, useInbox's items and unread count following a stored
// notification and its read, and useEvent's handler of the notification's own type getting it
// once, with its inbox id.
func TestE2ENPMPackage(t *testing.T) {
	bundle := npmBundle(t)
	s := startServer(t, "127.0.0.1:0", options{}, func(e *echo.Echo) { e.Static("/npm", bundle) })
	b := newBrowser(t)
	p := newPage(t, b, "npm-page", chromedp.WithNewBrowserContext())
	p.open(s.URL + "/npm/index.html?user=alice")

	type coreResult struct {
		User  string
		Error struct {
			IsNotifyError bool
			Code          string
			Status        int
		}
	}
	core := eval[coreResult](p, `window.__core`)
	if core.User != "alice" || !core.Error.IsNotifyError || core.Error.Code != "not_found" || core.Error.Status != 404 {
		t.Errorf("core API: %+v, want user alice and a NotifyError not_found with status 404", core)
	}

	p.waitJS(5*time.Second, "useNotify connected", `document.querySelector("#state")?.textContent === "connected"`)
	s.sendTo(t, "alice", "stored for alice")
	p.waitJS(deliveryTime, "useInbox shows it", `document.querySelector("#items li .text")?.textContent === "stored for alice"`)
	p.waitJS(deliveryTime, "unread 1", `document.querySelector("#unread").textContent === "1"`)
	id := eval[string](p, `document.querySelector("#items li").dataset.id`)
	p.waitJS(deliveryTime, "useEvent got it", `document.querySelectorAll("#events li").length === 1`)
	if got := eval[[]string](p, `[...document.querySelectorAll("#events li")].map((li) => li.dataset.id + " " + li.dataset.stored + " " + li.textContent)`); len(got) != 1 || got[0] != id+" 1 stored for alice" {
		t.Errorf(`on("message") got %q, want once [%s 1 stored for alice]`, got, id)
	}

	p.do("mark it read", chromedp.Click(chromedp.CSS(`#items li button`)))
	p.waitJS(deliveryTime, "read", `document.querySelector("#items li").dataset.read === "1" && document.querySelector("#unread").textContent === "0"`)
	if n := eval[int](p, `document.querySelectorAll("#events li").length`); n != 1 {
		t.Errorf(`on("message") ran %d times after the read, want 1`, n)
	}
	// One token per connection (the core's, React's): the inbox's requests (the core's markRead,
	// useInbox's list, the read) reuse them.
	if n := eval[int](p, `window.__tokens`); n != 2 {
		t.Errorf("the page fetched %d tokens, want 2 (one per connection)", n)
	}
}
