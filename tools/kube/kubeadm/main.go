// Command kubeadm is Kubernetes' kubeadm, built from the k8s.io/kubernetes Go
// module at the version of the other components. The kind node image needs
// it (kind runs kubeadm init and join in the nodes); the local cluster and
// the tests do not, so it is not part of the multi-call binary.
package main

import (
	"k8s.io/kubernetes/cmd/kubeadm/app"
	utilerrors "k8s.io/kubernetes/cmd/kubeadm/app/util/errors"
)

func main() {
	utilerrors.HandleError(app.Run())
}
