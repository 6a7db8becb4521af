package inject

import (
	"os"

	"github.com/go-logr/logr"
)

// FileCABundle reads the CA bundle from a file (cert-manager's ca.crt in a
// mounted Secret) at every call, so a renewed CA is used as soon as the
// kubelet updates the file.
func FileCABundle(path string, log logr.Logger) CABundle {
	return func() []byte {
		data, err := os.ReadFile(path) //nolint:gosec // G304: the path comes from the webhook's own flags
		if err != nil {
			log.Error(err, "reading the CA bundle", "path", path)
			return nil
		}
		return data
	}
}
