package auth

import (
	"crypto/tls"
	"testing"

	"github.com/edgerelay/edgerelay/internal/testutil"
)

// testPKI is a throwaway CA and a server certificate for 127.0.0.1 and
// localhost signed by it.
type testPKI struct {
	caFile string      // PEM of the CA, for LDAPConfig.CAFile
	server *tls.Config // the server's TLS configuration
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	ca := testutil.NewCA(t)
	return &testPKI{
		caFile: ca.PEMFile(t),
		server: &tls.Config{
			Certificates: []tls.Certificate{ca.Leaf(t, "127.0.0.1", "localhost")},
			MinVersion:   tls.VersionTLS12,
		},
	}
}
