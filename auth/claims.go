package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxUserIDLen is the longest user id accepted, in bytes (after an integer
// id is written in decimal).
const MaxUserIDLen = 256

// maxNumericDate is 9999-12-31T23:59:59Z; later times are refused.
const maxNumericDate = 253402300799

// claims is a verified JWT payload decoded with UseNumber, so that numbers
// keep every digit (json.Number).
type claims map[string]any

// parseClaims decodes a payload that must be one JSON object.
func parseClaims(payload []byte) (claims, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var c claims
	if err := dec.Decode(&c); err != nil || c == nil {
		return nil, errors.New("payload is not a JSON object")
	}
	if len(bytes.TrimLeft(payload[dec.InputOffset():], " \t\r\n")) > 0 {
		return nil, errors.New("payload has data after its JSON object")
	}
	return c, nil
}

// str returns a string claim; present is false when the claim is absent.
func (c claims) str(name string) (v string, present bool, err error) {
	raw, ok := c[name]
	if !ok {
		return "", false, nil
	}
	s, ok := raw.(string)
	if !ok {
		return "", true, fmt.Errorf("claim %s is %s, not a string", name, jsonKind(raw))
	}
	return s, true, nil
}

// audiences returns the aud claim, a string or an array of strings.
func (c claims) audiences() ([]string, error) {
	raw, ok := c["aud"]
	if !ok {
		return nil, nil
	}
	switch v := raw.(type) {
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("claim aud holds %s, not a string", jsonKind(e))
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("claim aud is %s, not a string or an array of strings", jsonKind(raw))
}

// numericDate returns a NumericDate claim (RFC 7519 §2: seconds since the
// epoch, possibly with a fraction). Negative values and values past the year
// 9999 are refused.
func (c claims) numericDate(name string) (t time.Time, present bool, err error) {
	raw, ok := c[name]
	if !ok {
		return time.Time{}, false, nil
	}
	n, ok := raw.(json.Number)
	if !ok {
		return time.Time{}, true, fmt.Errorf("claim %s is %s, not a number", name, jsonKind(raw))
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, true, fmt.Errorf("claim %s is out of range", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// timeCheck is the outcome of checking exp, nbf and iat.
type timeCheck struct {
	exp     time.Time
	expired bool
}

// checkTimes requires exp, and checks nbf and iat when present, each with
// the clock skew. A token that is otherwise fine but past exp+skew is
// reported as expired, not as an error, so that callers can check every
// other claim first.
func checkTimes(c claims, now time.Time, skew time.Duration) (timeCheck, error) {
	exp, ok, err := c.numericDate("exp")
	if err != nil {
		return timeCheck{}, err
	}
	if !ok {
		return timeCheck{}, errors.New("claim exp is missing")
	}
	if nbf, ok, err := c.numericDate("nbf"); err != nil {
		return timeCheck{}, err
	} else if ok && now.Add(skew).Before(nbf) {
		return timeCheck{}, fmt.Errorf("not valid before %s (nbf)", nbf.UTC().Format(time.RFC3339))
	}
	if iat, ok, err := c.numericDate("iat"); err != nil {
		return timeCheck{}, err
	} else if ok && now.Add(skew).Before(iat) {
		return timeCheck{}, fmt.Errorf("issued in the future, at %s (iat)", iat.UTC().Format(time.RFC3339))
	}
	return timeCheck{exp: exp, expired: !now.Before(exp.Add(skew))}, nil
}

// normalizeUserID turns a user claim into herald's user id. A JSON string is
// taken as it is; a JSON number must be a non-negative integer and is written
// in decimal without sign, exponent or leading zeros, so 42, 42.0, 4.2e1 and
// "42" all give "42" (but the string "042" stays "042"). Empty strings,
// negative or fractional numbers, null, booleans, objects and arrays are
// refused, as are ids longer than MaxUserIDLen bytes or holding control
// characters.
func normalizeUserID(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, checkUserIDString(x)
	case json.Number:
		return normalizeIntegerLiteral(string(x))
	}
	return "", fmt.Errorf("is %s, not a string or an integer", jsonKind(v))
}

// checkUserIDString applies the rules every user id obeys.
func checkUserIDString(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	if len(s) > MaxUserIDLen {
		return fmt.Errorf("is %d bytes, more than %d", len(s), MaxUserIDLen)
	}
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return errors.New("holds a control or replacement character")
		}
	}
	return nil
}

// normalizeIntegerLiteral writes a JSON number literal holding a
// non-negative integer as plain decimal digits. It works on the digits, not
// on a float, so that no precision is lost.
func normalizeIntegerLiteral(lit string) (string, error) {
	s := lit
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	exp := 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > MaxUserIDLen || e < -MaxUserIDLen-len(s) {
			return "", errors.New("is a number with an exponent out of range")
		}
		exp, s = e, s[:i]
	}
	intPart, fracPart, _ := strings.Cut(s, ".")
	if intPart == "" || !allDigits(intPart) || !allDigits(fracPart) {
		return "", errors.New("is not a JSON number")
	}
	digits := strings.TrimLeft(intPart+fracPart, "0")
	exp -= len(fracPart)
	if digits == "" {
		return "0", nil
	}
	if neg {
		return "", errors.New("is a negative number")
	}
	if exp < 0 {
		cut := len(digits) + exp
		if cut <= 0 || strings.TrimRight(digits[cut:], "0") != "" {
			return "", errors.New("is a number with a fraction")
		}
		digits, exp = digits[:cut], 0
	}
	if len(digits)+exp > MaxUserIDLen {
		return "", fmt.Errorf("is a number of more than %d digits", MaxUserIDLen)
	}
	return digits + strings.Repeat("0", exp), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// jsonKind names the JSON type of a decoded value, for error messages that
// must not repeat the value itself.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}
