package spool

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxSegmentNum is the highest segment number replay takes: 2^48. At a
// segment a second that is 8.9 million years of rotations, so a number
// above it is no segment the journal wrote (damage, a stray file), and
// setting the next number from it could run the numbering to 2^64-1.
const maxSegmentNum = 1 << 48

// journalState is what replaying the segments in order leaves: the MSG
// records without an END, with their last CLAIM.
type journalState struct {
	live map[string]*jmsg
	// older: MSGs without END that a later MSG of the same ID (another
	// instance) superseded in live: an END that failed before the ID was
	// enqueued again (before pending ENDs blocked that), or damage.
	older map[endKey]*jmsg
	log   func(msg string, args ...any)
}

// apply replays one record of seg found at off. CLAIM and END apply to
// the MSG of their instance.
func (st *journalState) apply(seg *segment, rec jrec, off int64) {
	jm := st.live[rec.id]
	if (jm == nil || jm.instance != rec.instance) && rec.typ != recMsg {
		// A superseded MSG's, also once the newer one has its END.
		jm = st.older[endKey{rec.id, rec.instance}]
	}
	switch rec.typ {
	case recMsg:
		if jm != nil {
			if jm.instance == rec.instance {
				st.log("spool: journal holds a MSG twice; the first is kept", "id", rec.id, "segment", seg.path, "offset", off)
				return
			}
			st.log("spool: journal holds a second MSG for an ID whose first has no END; the newer is the message, the older is checked against quarantine",
				"id", rec.id, "segment", seg.path, "offset", off)
			if st.older == nil {
				st.older = map[endKey]*jmsg{}
			}
			st.older[endKey{rec.id, jm.instance}] = jm
		}
		jm = &jmsg{seg: seg, instance: rec.instance, bodyOff: off + rec.bodyOff, bodyLen: rec.bodyLen,
			envOff: off + rec.envOff, envLen: rec.envLen}
		if env, err := decodeEnvFile(rec.id, rec.env); err == nil {
			jm.due = dueAt(env.Envelope)
		} // else due at once: its claim finds it unusable and quarantines it
		st.live[rec.id] = jm
		seg.live++
	case recClaim:
		if jm != nil && jm.instance == rec.instance && rec.lease.seq > jm.claim.seq {
			jm.claim = rec.lease
		}
	case recEnd:
		if jm != nil && jm.instance == rec.instance {
			jm.seg.live--
			if st.live[rec.id] == jm {
				delete(st.live, rec.id)
			} else {
				delete(st.older, endKey{rec.id, rec.instance})
			}
		}
	}
}

// replayJournal rebuilds the journal's messages at Open, after the msg/
// scan: segments in order, every record applied. A bad record at the
// end of the newest segment that has records, cut short, is a write never
// acknowledged: the segment is cut there (WARN). A bad record anywhere
// else, or one that is all there (its length within the file), is damage: the
// rest of that segment is copied to quarantine/ for an operator (ERROR),
// then cut; the records before it are kept. A live MSG whose ID is in
// msg/ (or whose instance is in quarantine/) was moved: its END is
// written now. The others are indexed, a CLAIM without END counted as a
// crashed claim.
func (s *Spool) replayJournal(quarantined map[string]bool, now time.Time) error {
	names, err := s.fs.ReadDirNames(s.jDir)
	if err != nil {
		return err
	}
	var nums []uint64
	for _, name := range names {
		hex, _ := strings.CutSuffix(name, ".log")
		n, err := strconv.ParseUint(hex, 16, 64)
		// Exactly the name segmentName gives (lower-case hex: another
		// spelling would be looked up under a name that does not exist),
		// and a number that leaves room above it for the segments still
		// to be created (rotateLocked never creates one above
		// maxSegmentNum; a name above it is not the journal's).
		if err != nil || n == 0 || n > maxSegmentNum || name != segmentName(n) {
			s.log.Warn("spool: unexpected file in the journal directory; left alone", "file", name)
			continue
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	sizes := make([]int64, len(nums))
	last := -1 // the newest segment with bytes
	for i, n := range nums {
		fi, err := s.fs.Lstat(filepath.Join(s.jDir, segmentName(n)))
		if err != nil {
			return err
		}
		if sizes[i] = fi.Size(); sizes[i] > 0 {
			last = i
		}
	}
	st := &journalState{live: map[string]*jmsg{}, older: map[endKey]*jmsg{}, log: s.log.Warn}
	for i, n := range nums {
		seg := &segment{num: n, path: filepath.Join(s.jDir, segmentName(n))}
		if err := s.replaySegment(st, seg, sizes[i], i == last); err != nil {
			return err
		}
		s.j.segs = append(s.j.segs, seg)
		s.j.next = n + 1
	}
	if err := s.replayOlder(st, quarantined); err != nil {
		return err
	}
	ids := make([]string, 0, len(st.live))
	for id := range st.live {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		jm := st.live[id]
		moved := s.entries[id] != nil
		if !moved && quarantined[id] {
			if moved, err = s.inQuarantine(id, jm.instance); err != nil {
				return err
			}
		}
		if moved && s.entries[id] != nil {
			if err := s.keepOtherInstance(id, jm); err != nil {
				return err
			}
		}
		if moved {
			// Moved (Reschedule or quarantine) before a crash took its END.
			s.endMoved(id, jm)
			continue
		}
		e := &spoolEntry{id: id, next: jm.due, index: -1, j: jm}
		if e.next.IsZero() {
			e.next = now
		}
		if jm.claim.seq != 0 {
			e.crashed = true
			s.stats.crashedClaims.Add(1)
			if jm.claim.leaseUntil.After(e.next) {
				e.next = jm.claim.leaseUntil
			}
			s.log.Warn("spool: a delivery of this message was interrupted by a crash; due again when its lease ends",
				"id", id, "lease_until", jm.claim.leaseUntil, "earlier_crashes", jm.claim.crashes)
		}
		s.entries[id] = e
	}
	s.j.collect()
	return nil
}

// endMoved writes the END of a MSG whose message left the journal (moved
// to msg/, or quarantined) at Open. If it cannot be written (a full disk:
// Open must succeed so that deliveries can free space), it is pending, as
// at runtime: written before a later append, and before the Complete of
// the message in msg/ removes its file.
func (s *Spool) endMoved(id string, jm *jmsg) {
	if _, _, err := s.j.append(encodeEndRecord(id, jm.instance), false); err != nil {
		p := s.pendEnd(id, jm)
		if e := s.entries[id]; e != nil {
			e.end = p
		}
		s.log.Warn("spool: journal message already moved; its END cannot be written now, tried again later", "id", id, "err", err)
		return
	}
	jm.seg.live--
	s.log.Info("spool: journal message already moved; its END written", "id", id)
}

// replayOlder settles the MSGs that a later MSG of the same ID
// superseded: one whose instance is in quarantine was quarantined, and
// gets its END; any other is copied to quarantine first (ERROR), so that
// neither acknowledged message is lost.
func (s *Spool) replayOlder(st *journalState, quarantined map[string]bool) error {
	keys := make([]endKey, 0, len(st.older))
	for k := range st.older {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b endKey) int { return strings.Compare(a.id, b.id) })
	for _, k := range keys {
		jm := st.older[k]
		in := false
		if quarantined[k.id] {
			var err error
			if in, err = s.inQuarantine(k.id, k.instance); err != nil {
				return err
			}
		}
		if !in {
			if err := s.copyJournalMessage(k.id, jm); err != nil {
				return fmt.Errorf("journal: quarantine of a superseded MSG of %s: %w", k.id, err)
			}
			s.stats.quarantined.Add(1)
			s.log.Error("spool: message quarantined", "id", k.id,
				"reason", "the journal holds a later message of this ID without an END of this one", "quarantine", s.qDir)
		}
		s.endMoved(k.id, jm)
	}
	return nil
}

// replaySegment applies the records of seg (size bytes) to st, and cuts
// the segment after its last valid record if bytes follow it: a torn tail
// when tail is set, else damage whose rest is first copied to quarantine.
func (s *Spool) replaySegment(st *journalState, seg *segment, size int64, tail bool) error {
	f, err := s.fs.Open(seg.path)
	if err != nil {
		return err
	}
	good, err := readRecords(bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 64<<10), func(rec jrec, off int64) error {
		st.apply(seg, rec, off)
		return nil
	})
	f.Close()
	if err == nil {
		return nil
	}
	if !errors.Is(err, errBadRecord) {
		return fmt.Errorf("journal %s: %w", seg.path, err)
	}
	damaged := !tail
	if tail {
		// A torn write leaves one record cut short, and nothing after it
		// (appends are serialized, and a failed one is cut back before the
		// next): a valid record after the bad one means damage, whose
		// rest must not be dropped silently.
		f, err := s.fs.Open(seg.path)
		if err != nil {
			return err
		}
		whole, werr := wholeRecordAt(f, good, size)
		next, ferr := findRecord(f, good+1, min(size, good+s.segmentBound()))
		f.Close()
		if ferr = cmp.Or(werr, ferr); ferr != nil {
			return fmt.Errorf("journal %s: %w", seg.path, ferr)
		}
		// A torn write leaves its record short; a bad record that is all
		// there (a flipped bit in the last acknowledged message) is
		// damage too, copied to quarantine rather than dropped.
		damaged = next >= 0 || whole
	}
	if !damaged {
		s.log.Warn("spool: journal ends in a record that was never acknowledged (torn write); cut off",
			"segment", seg.path, "offset", good, "bytes", size-good, "reason", err.Error())
	} else {
		q, qerr := s.quarantineSegmentRest(seg, good, size)
		if qerr != nil {
			return fmt.Errorf("journal %s: copying damaged rest to quarantine: %w", seg.path, qerr)
		}
		s.log.Error("spool: journal segment damaged; the records before the damage are kept, the rest is in quarantine",
			"segment", seg.path, "offset", good, "bytes", size-good, "quarantine", q, "reason", err.Error())
		if bound := good + s.segmentBound(); size > bound {
			s.log.Error("spool: journal segment larger than any segment the journal writes; the bytes beyond the bound are not copied",
				"segment", seg.path, "bound", bound, "bytes", size-bound)
		}
	}
	w, err := s.fs.OpenRW(seg.path)
	if err != nil {
		return err
	}
	err = w.Truncate(good)
	if err == nil {
		err = w.Datasync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}
