// The pod sandbox's process: holds the pod's namespaces and exits on SIGTERM or SIGINT.
//
// Kubernetes' own pause image cannot be pulled here (no registry), so the local cluster builds
// this one and tags it as the image the kubelet and containerd ask for.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	// Reap orphans: the sandbox is PID 1 of the pod when the PID namespace is shared.
	signal.Ignore(syscall.SIGCHLD)
	<-stop
}
