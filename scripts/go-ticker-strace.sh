#!/usr/bin/env bash
# Evidence for docs/GUIDE.md: a Go program whose tickers are never stopped
# makes no timerfd calls. Go keeps timers in the runtime's heap and sleeps
# in epoll_pwait (or futex) with a timeout. Needs go and strace.
#
#   scripts/go-ticker-strace.sh
set -euo pipefail
for tool in go strace; do
  command -v "$tool" >/dev/null || { echo "go-ticker-strace.sh: $tool is not installed" >&2; exit 2; }
done
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/main.go" <<'GO'
package main

import (
	"fmt"
	"time"
)

func main() {
	// 100 tickers, none ever stopped: the shape of the leak in Go.
	for i := 0; i < 100; i++ {
		t := time.NewTicker(time.Millisecond)
		go func() {
			for range t.C {
			}
		}()
	}
	beat := time.NewTicker(10 * time.Millisecond)
	for i := 0; i < 20; i++ {
		<-beat.C
	}
	fmt.Println("ticks received: 20")
}
GO
(cd "$dir" && GO111MODULE=off GOCACHE="$dir/cache" go build -o ticker main.go)
go version
strace -f -qq -c -o "$dir/summary.txt" "$dir/ticker"
echo "timerfd calls: $(grep -c timerfd "$dir/summary.txt" || true)"
echo "what the runtime waits with instead:"
grep -E 'epoll_pwait|futex|nanosleep' "$dir/summary.txt" || true
