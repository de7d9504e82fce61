package main

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// On a phone's 390 px wide viewport nothing is wider than the screen: the header with a
// 32-character user name, the list with a notification, the side panel with a toast.
func TestE2EPhoneViewport(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", options{})
	b := newBrowser(t)
	p := newPage(t, b, "phone", chromedp.WithNewBrowserContext())
	p.do("390 px viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile))
	const user = "abcdefghijklmnopqrstuvwxyz012345" // the longest name the app takes
	p.login(s.URL, user)
	s.sendTo(t, user, "A notification long enough to wrap over several lines on a phone's narrow screen")
	p.waitShown(deliveryTime, "A notification long enough to wrap over several lines on a phone's narrow screen")
	p.waitJS(2*time.Second, "toasts in place", `document.getAnimations().every((a) => a.playState === "finished")`)
	// A mobile viewport widens to what overflows it: innerWidth then grows past 390 too.
	if w := eval[int](p, `window.innerWidth`); w != 390 {
		t.Errorf("the viewport widened to %d px, want 390", w)
	}
	if w := eval[int](p, `document.documentElement.scrollWidth`); w > 390 {
		wide := eval[[]string](p, `[...document.querySelectorAll("body *")].filter((el) => el.getBoundingClientRect().right > 390).map((el) => el.tagName + (el.id ? "#" + el.id : "") + "." + el.className)`)
		t.Errorf("document scrollWidth %d > 390; past the right edge: %q", w, wide)
	}
	if top := eval[int](p, `document.querySelector(".topbar").scrollWidth`); top > 390 {
		t.Errorf("header scrollWidth %d > 390", top)
	}
}

// The User / Topic / Everyone control is a radio group the keyboard reaches: Tab lands on the
// checked radio, the arrow keys change the choice (and with it the form's "to" field), and the
// focused choice shows a focus ring.
func TestE2ETargetRadiosKeyboard(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", options{})
	b := newBrowser(t)
	p := newPage(t, b, "keyboard", chromedp.WithNewBrowserContext())
	p.login(s.URL, "alice")
	// The last focusable element before the send form is the archive's summary.
	eval[chromedp.Void](p, `document.querySelector("#archive-box summary").focus()`)
	p.do("Tab", chromedp.KeyEvent(kb.Tab))
	focused := `document.activeElement.name === "target" ? document.activeElement.value : document.activeElement.outerHTML.slice(0, 80)`
	if got := eval[string](p, focused); got != "user" {
		t.Fatalf("Tab focused %q, want the checked radio (user)", got)
	}
	if ring := eval[string](p, `getComputedStyle(document.activeElement.closest("label")).outlineStyle`); ring == "none" {
		t.Errorf("the focused choice shows no focus ring")
	}
	checked := `document.querySelector("#send-form input[name=target]:checked").value`
	for _, step := range []struct{ key, want, label string }{
		{kb.ArrowRight, "topic", "Topic"},
		{kb.ArrowRight, "everyone", ""},
		{kb.ArrowLeft, "topic", "Topic"},
		{kb.ArrowLeft, "user", "User"},
	} {
		p.do("arrow key", chromedp.KeyEvent(step.key))
		if got := eval[string](p, checked); got != step.want {
			t.Fatalf("after an arrow key the choice is %q, want %q", got, step.want)
		}
		if got := eval[string](p, focused); got != step.want {
			t.Errorf("focus on %q, want the checked radio %q", got, step.want)
		}
		hidden := eval[bool](p, `document.querySelector("#to-field").hidden`)
		if step.want == "everyone" != hidden {
			t.Errorf("choice %s: the to field hidden=%v", step.want, hidden)
		}
		if step.label != "" {
			if got := eval[string](p, `document.querySelector("#to-label").textContent`); got != step.label {
				t.Errorf("choice %s: the to field's label is %q, want %q", step.want, got, step.label)
			}
		}
	}
}
