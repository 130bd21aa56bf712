package relay

import "sync/atomic"

// Stats are the submission server's counters since start, for /metrics.
type Stats struct {
	// Connections accepted, and refused by the connection limits.
	Connections, ConnectionsRefused uint64
	// Open is the number of connections open now.
	Open int
	// AUTH outcomes: success, wrong credentials, and 454 (backend down or
	// throttled).
	AuthOK, AuthFailed, AuthTempFail uint64
	// Messages queued (250) and their bytes; refused for the client's
	// fault (5xx); not queued for ours (451).
	Queued, QueuedBytes, Refused, QueueErrors uint64
}

type counters struct {
	conns, connsRefused, authOK, authFailed, authTemp atomic.Uint64
	queued, queuedBytes, refused, queueErrors         atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	open := len(s.allConns())
	return Stats{
		Connections: c.conns.Load(), ConnectionsRefused: c.connsRefused.Load(), Open: open,
		AuthOK: c.authOK.Load(), AuthFailed: c.authFailed.Load(), AuthTempFail: c.authTemp.Load(),
		Queued: c.queued.Load(), QueuedBytes: c.queuedBytes.Load(), Refused: c.refused.Load(), QueueErrors: c.queueErrors.Load(),
	}
}
