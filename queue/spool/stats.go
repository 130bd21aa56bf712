package spool

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

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

// maxBacklogReads bounds the envelope files one Backlog.Read reads, so
// that the first scrape after a start with a large backlog stays quick;
// the rest are read by the next calls. IDs are read in order, and queue IDs
// sort by arrival, so the oldest messages are known first.
const maxBacklogReads = 2000

// Backlog reports the spool's depth and the arrival of its oldest message,
// for the queue gauges. The spool's index holds no arrival time (it orders
// by due time), so Backlog reads each message's envelope once, the first
// time Read sees its ID, and keeps the arrival in memory until the message
// leaves the spool. Safe for concurrent use.
type Backlog struct {
	s       *Spool
	mu      sync.Mutex
	arrival map[string]time.Time
}

// NewBacklog returns a Backlog over s.
func NewBacklog(s *Spool) *Backlog {
	return &Backlog{s: s, arrival: make(map[string]time.Time)}
}

// Read returns the number of messages in the spool (leased ones included)
// and the Arrival of the oldest one whose envelope it could read (zero
// when there is none). An envelope that cannot be read (gone meanwhile, or
// unreadable) is left out of oldest and tried again by the next Read.
func (b *Backlog) Read() (messages int, oldest time.Time) {
	s := b.s
	ids := s.sortedIDs()

	b.mu.Lock()
	defer b.mu.Unlock()
	present := make(map[string]bool, len(ids))
	reads := 0
	for _, id := range ids {
		present[id] = true
		if _, ok := b.arrival[id]; ok || reads >= maxBacklogReads {
			continue
		}
		reads++
		if jm := s.journalOf(id); jm != nil {
			if env, err := s.readJournalEnvelope(id, jm); err == nil {
				b.arrival[id] = env.Arrival
			}
		} else if rec, err := s.readRecord(id); err == nil {
			b.arrival[id] = rec.Arrival
		}
	}
	for id, at := range b.arrival {
		if !present[id] {
			delete(b.arrival, id)
			continue
		}
		if oldest.IsZero() || at.Before(oldest) {
			oldest = at
		}
	}
	return len(ids), oldest
}

// sortedIDs returns the IDs of the messages the spool holds now, sorted: a
// snapshot taken under s.mu, for readers that then read each envelope
// without holding it (Backlog.Read, List).
func (s *Spool) sortedIDs() []string {
	s.mu.Lock()
	ids := make([]string, 0, len(s.entries))
	for id := range s.entries {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	slices.Sort(ids)
	return ids
}
