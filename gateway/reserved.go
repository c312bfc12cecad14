package gateway

import (
	"bytes"
	"encoding/json"
)

// reservedTypes are the "type" values of herald's own frames. An
// application payload whose top-level "type" is one of them is never
// relayed (reason "reserved_type"), so that a client can take such a frame
// on the wire for herald's: a field an application copied into its payload
// cannot pose as a reconnect hint, a welcome or an inbox position.
var reservedTypes = [...]string{"welcome", "pong", "reconnect", "resync", "replay_complete"}

// reservedType reports whether payload is a JSON object with a top-level
// "type" member (any of them: JSON.parse keeps the last of duplicates)
// whose string value is a reserved type, escapes decoded. It reads the
// object's top level once and allocates only for a key or value that holds
// an escape. Text that is not a JSON object is not reserved: no client
// parses it into a frame.
func reservedType(p []byte) bool {
	i := skipSpace(p, 0)
	if i >= len(p) || p[i] != '{' {
		return false
	}
	i++
	for {
		i = skipSpace(p, i)
		if i >= len(p) || p[i] != '"' {
			return false // "}" of an empty object, or not JSON
		}
		key := i
		if i = skipString(p, i); i < 0 {
			return false
		}
		keyEnd := i
		if i = skipSpace(p, i); i >= len(p) || p[i] != ':' {
			return false
		}
		i = skipSpace(p, i+1)
		val := i
		if i = skipValue(p, i); i < 0 {
			return false
		}
		if val < len(p) && p[val] == '"' && jsonStringIs(p[key:keyEnd], "type") && isReservedValue(p[val:i]) {
			return true
		}
		if i = skipSpace(p, i); i >= len(p) || p[i] != ',' {
			return false // "}": the end of the object
		}
		i++
	}
}

// IsReservedType reports whether herald would refuse to relay payload
// because its top-level "type" is one of herald's own frame types
// (welcome, pong, reconnect, resync, replay_complete), so that a publisher
// can say so instead of publishing what no socket will receive.
func IsReservedType(payload []byte) bool {
	return reservedType(payload)
}

func isReservedValue(tok []byte) bool {
	for _, r := range reservedTypes {
		if jsonStringIs(tok, r) {
			return true
		}
	}
	return false
}

// jsonStringIs reports whether the JSON string token tok (quotes included)
// decodes to s.
func jsonStringIs(tok []byte, s string) bool {
	inner := tok[1 : len(tok)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == s
	}
	var v string
	return json.Unmarshal(tok, &v) == nil && v == s
}

func skipSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at p[i] ('"'),
// or -1 when it does not end. A quote ends it unless an odd number of
// backslashes precedes it.
func skipString(p []byte, i int) int {
	for i++; ; {
		q := bytes.IndexByte(p[i:], '"')
		if q < 0 {
			return -1
		}
		i += q
		bs := 0
		for j := i - 1; j >= 0 && p[j] == '\\'; j-- {
			bs++
		}
		i++
		if bs%2 == 0 {
			return i
		}
	}
}

// skipValue returns the index after the value starting at p[i], or -1 when
// it does not end. Nested objects and arrays are skipped by depth, strings
// by their quotes; it does not validate what it skips.
func skipValue(p []byte, i int) int {
	if i >= len(p) {
		return -1
	}
	switch p[i] {
	case '"':
		return skipString(p, i)
	case '{', '[':
		depth := 0
		for ; i < len(p); i++ {
			switch p[i] {
			case '"':
				if i = skipString(p, i); i < 0 {
					return -1
				}
				i--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	default: // a number, true, false or null
		for i < len(p) && p[i] != ',' && p[i] != '}' && p[i] != ']' && p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r' {
			i++
		}
		return i
	}
}
