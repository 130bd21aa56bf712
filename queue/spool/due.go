package spool

import (
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// entryHeap orders the messages that are not leased by due time (see
// dueAt), oldest first, and by ID (which sorts by arrival) among equals.
type entryHeap []*spoolEntry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	if !h[i].next.Equal(h[j].next) {
		return h[i].next.Before(h[j].next)
	}
	return h[i].id < h[j].id
}
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *entryHeap) Push(x any) {
	e := x.(*spoolEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*h = old[:len(old)-1]
	return e
}

// dueAt is when env is due: its NextAttempt, or for a message never
// rescheduled its Arrival, so that due messages go out first come, first
// served and fresh mail does not overtake retries that are already due.
func dueAt(env *queue.Envelope) time.Time {
	if env.NextAttempt.IsZero() {
		return env.Arrival
	}
	return env.NextAttempt
}
