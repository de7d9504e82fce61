module github.com/gonotify/notify/bench

go 1.26.8

require (
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/gonotify/notify v0.0.0
	github.com/gorilla/websocket v1.5.3
	github.com/olahol/melody v1.4.0
)

replace github.com/gonotify/notify => ../
