#!/usr/bin/env bash
# Build the pod sandbox ("pause") image without a registry: a static Go binary that sleeps until
# SIGINT/SIGTERM and reaps orphans (what upstream's pause.c does), as a one-binary image.
# Usage: tests/k8s/cluster/pause-image.sh
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."
. tests/k8s/cluster/versions.env
WORK=build/k8s/pause
mkdir -p "$WORK"
cat > "$WORK/main.go" <<'GO'
// pause: the process that holds a pod's namespaces open.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		// PID 1 of a shared PID namespace inherits orphans: reap them.
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
[ -f "$WORK/go.mod" ] || printf 'module local/pause\n\ngo 1.24\n' > "$WORK/go.mod"
[ -x "$WORK/pause" ] || (cd "$WORK" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o pause .)
tests/k8s/cluster/binary-image.sh "$K8S_PAUSE_IMAGE" "$WORK/pause" 65535:65535
