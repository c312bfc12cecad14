package keyslot

import (
	"strconv"
	"strings"
	"sync"
)

// Slots is the number of hash slots of a Redis Cluster.
const Slots = 16384

// Of returns the hash slot of key (or channel): CRC16 (XMODEM) of the key's
// hash tag, the part between the first '{' and the next '}' when that part
// is not empty, else of the whole key; modulo 16384.
func Of(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key)) % Slots
}

// Tag returns a short hash tag (without its braces) whose slot is slot:
// "{" + Tag(s) + "}" puts a key in slot s. The tags are the shortest
// decimal numbers that land in each slot, worked out once.
func Tag(slot int) string {
	tagsOnce.Do(buildTags)
	return tags[slot%Slots]
}

var (
	tagsOnce sync.Once
	tags     [Slots]string // set once by buildTags
)

func buildTags() {
	left := Slots
	for n := 0; left > 0; n++ {
		s := strconv.Itoa(n)
		if slot := int(crc16(s)) % Slots; tags[slot] == "" {
			tags[slot] = s
			left--
		}
	}
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum
// Redis Cluster hashes keys with, a byte at a time.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^s[i]]
	}
	return crc
}

// crcTable is crc16's step for each byte.
var crcTable = func() (t [256]uint16) {
	for b := range t {
		crc := uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[b] = crc
	}
	return t
}()
