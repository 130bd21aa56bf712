package spool

import "sync/atomic"

// Stats are the spool's counters since it was opened, for /metrics.
type Stats struct {
	// Quarantined counts messages moved to quarantine for any reason.
	Quarantined uint64
	// CrashQuarantined counts messages set aside because MaxDeliveryCrashes
	// claims of them ended without Reschedule or Complete (a poison message
	// that kills the process during its delivery).
	CrashQuarantined uint64
	// CrashedClaims counts claims found unfinished at Open (deliveries
	// interrupted by a crash).
	CrashedClaims uint64
	// NoSpace counts Enqueue calls refused with ErrInsufficientStorage.
	NoSpace uint64
}

type spoolStats struct {
	quarantined, crashQuarantined, crashedClaims, noSpace atomic.Uint64
}

// Stats returns the spool's counters.
func (s *Spool) Stats() Stats {
	return Stats{
		Quarantined:      s.stats.quarantined.Load(),
		CrashQuarantined: s.stats.crashQuarantined.Load(),
		CrashedClaims:    s.stats.crashedClaims.Load(),
		NoSpace:          s.stats.noSpace.Load(),
	}
}
