module github.com/gonotify/notify/adapters/webpush

go 1.26.0

require (
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/olahol/melody v1.4.0 // indirect
	golang.org/x/crypto v0.31.0 // indirect
)

require (
	github.com/SherClockHolmes/webpush-go v1.4.0
	github.com/gonotify/notify v0.9.0
	go.uber.org/goleak v1.3.0
)

replace github.com/gonotify/notify => ../..
