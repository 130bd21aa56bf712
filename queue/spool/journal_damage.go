package spool

import (
	"bufio"
	"encoding/binary"
	"io"
	"path/filepath"
	"strconv"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
)

// segmentBound is the most bytes a segment written by this journal
// holds: records are appended while they fit JournalSegmentBytes (the
// default at least, lest a journal written with a larger setting count as
// oversized), and a record larger than that goes alone into a segment.
func (s *Spool) segmentBound() int64 {
	return max(s.j.segBytes, DefaultJournalSegmentBytes) + maxRecordLen
}

// findRecord returns the offset of the first valid whole record that
// starts in [from, end) of r and ends by end, or -1. It reads every byte
// once for the magic, and a candidate record of at most maxRecordLen
// bytes (one buffer) at each occurrence of the magic; it ends at end.
func findRecord(r io.ReaderAt, from, end int64) (int64, error) {
	if from >= end {
		return -1, nil
	}
	br := bufio.NewReaderSize(io.NewSectionReader(r, from, end-from), 64<<10)
	magic := binary.BigEndian.Uint32([]byte(recMagic))
	var win uint32
	var buf []byte
	hdr := make([]byte, recHeaderLen)
	for off := from; ; {
		c, err := br.ReadByte()
		if err == io.EOF {
			return -1, nil
		}
		if err != nil {
			return -1, err
		}
		off++
		win = win<<8 | uint32(c)
		at := off - 4
		if win != magic || at < from {
			continue
		}
		if n, err := r.ReadAt(hdr, at); n < len(hdr) {
			if err != nil && err != io.EOF {
				return -1, err
			}
			continue
		}
		l := int64(binary.LittleEndian.Uint32(hdr[4:]))
		if l < recHeaderLen+1+8 || l > maxRecordLen || at+l > end {
			continue
		}
		if int64(cap(buf)) < l {
			buf = make([]byte, l)
		}
		b := buf[:l]
		if n, err := r.ReadAt(b, at); int64(n) < l {
			if err != nil && err != io.EOF {
				return -1, err
			}
			continue
		}
		if _, err := decodeRecord(b); err == nil {
			return at, nil
		}
	}
}

// wholeRecordAt reports whether the bytes at off of r (size bytes) start
// with a record header that announces a record ending within size.
func wholeRecordAt(r io.ReaderAt, off, size int64) (bool, error) {
	hdr := make([]byte, recHeaderLen)
	if n, err := r.ReadAt(hdr, off); n < len(hdr) {
		if err != nil && err != io.EOF {
			return false, err
		}
		return false, nil
	}
	l := int64(binary.LittleEndian.Uint32(hdr[4:]))
	return string(hdr[:4]) == recMagic && l >= recHeaderLen+1+8 && l <= maxRecordLen && off+l <= size, nil
}

// quarantineSegmentRest copies bytes [from, size) of seg to
// quarantine/journal@<segment>.at-<from> (fsync, link, fsync'd).
func (s *Spool) quarantineSegmentRest(seg *segment, from, size int64) (string, error) {
	src, err := s.fs.Open(seg.path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	name := "journal@" + segmentName(seg.num) + ".at-" + strconv.FormatInt(from, 10)
	f, err := s.fs.CreateTemp(s.tmpDir, name+".*.tmp")
	if err != nil {
		return "", err
	}
	// Bounded: a huge (sparse, say) file is no segment the journal wrote,
	// and copying it whole could fill the disk and fail every start.
	if _, err := io.Copy(f, io.NewSectionReader(src, from, min(size-from, s.segmentBound()))); err != nil {
		f.Close()
		s.fs.Remove(f.Name())
		return "", err
	}
	dst := filepath.Join(s.qDir, name)
	if _, err := s.fs.Lstat(dst); err == nil {
		dst += "." + time.Now().UTC().Format("20060102T150405.000000000")
	}
	_, err = safefile.CommitNew(s.fs, &s.dirs, f, dst)
	return dst, err
}
