module github.com/gonotify/notify/adapters/webpush

go 1.26.0

require (
	github.com/SherClockHolmes/webpush-go v1.4.0 // indirect
	github.com/golang-jwt/jwt/v5 v5.2.1 // indirect
	golang.org/x/crypto v0.31.0 // indirect
)

require github.com/gonotify/notify v0.9.0

replace github.com/gonotify/notify => ../..
