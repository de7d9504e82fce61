module github.com/gonotify/notify

go 1.26

require (
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/gorilla/websocket v1.5.3
	github.com/olahol/melody v1.4.0
	go.uber.org/goleak v1.3.0
)
