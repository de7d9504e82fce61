package inbox

import "context"

// The inbox's HTTP handler leaves the caller's session out of the live change its request
// makes ([notify.Event].Except): the page that asked for the change shows it already. The
// session travels from the handler to live in the request's context, under exceptKey.

type exceptKey struct{}

// withExcept returns ctx carrying the session to leave out; ctx itself when there is none.
func withExcept(ctx context.Context, session string) context.Context {
	if session == "" {
		return ctx
	}
	return context.WithValue(ctx, exceptKey{}, session)
}

// exceptOf returns the session withExcept put in ctx, or "".
func exceptOf(ctx context.Context) string {
	s, _ := ctx.Value(exceptKey{}).(string)
	return s
}
