// Command etcd runs the etcd server that the pinned Kubernetes release was
// tested with. It exists so the project's local control plane needs no binary
// download: the server comes from the same module graph as kube-apiserver.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
