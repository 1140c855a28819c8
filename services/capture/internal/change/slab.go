package change

import "slices"

// slab carves the changes' text from larger allocations to keep
// allocations (and so GC work) per change low; a slab lives until its last
// change is in a message.
type slab struct {
	data []byte
}

// copy returns a copy of raw (the replication connection reuses its
// buffer).
func (s *slab) copy(raw []byte) []byte {
	if len(raw) > 8<<10 {
		return slices.Clone(raw)
	}
	if len(s.data) < len(raw) {
		s.data = make([]byte, 256<<10)
	}
	d := s.data[:len(raw):len(raw)]
	copy(d, raw)
	s.data = s.data[len(raw):]
	return d
}
