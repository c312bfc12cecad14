package redis

// slotRange is one line of CLUSTER SLOTS: slots start..end are served by
// the master at addr.
type slotRange struct {
	start, end int
	addr       string
}

// withOwner returns a copy of slots in which the master at addr serves slot.
func withOwner(slots []slotRange, slot int, addr string) []slotRange {
	out := make([]slotRange, 0, len(slots)+2)
	placed := false
	for _, s := range slots {
		switch {
		case s.start <= slot && slot <= s.end:
			if s.start < slot {
				out = append(out, slotRange{s.start, slot - 1, s.addr})
			}
			out = append(out, slotRange{slot, slot, addr})
			if slot < s.end {
				out = append(out, slotRange{slot + 1, s.end, s.addr})
			}
			placed = true
			continue
		case !placed && s.start > slot:
			out = append(out, slotRange{slot, slot, addr})
			placed = true
		}
		out = append(out, s)
	}
	if !placed {
		out = append(out, slotRange{slot, slot, addr})
	}
	return out
}
