module github.com/gonotify/notify/adapters/webpush

go 1.26.0

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/olahol/melody v1.4.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/crypto v0.31.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)

require (
	github.com/SherClockHolmes/webpush-go v1.4.0
	github.com/gonotify/notify v0.9.0
	github.com/gonotify/notify/adapters/redisbroker v0.0.0-00010101000000-000000000000
	github.com/redis/go-redis/v9 v9.23.0
	go.uber.org/goleak v1.3.0
)

replace github.com/gonotify/notify => ../..

replace github.com/gonotify/notify/adapters/redisbroker => ../redisbroker
