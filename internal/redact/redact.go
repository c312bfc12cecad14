// Package redact removes credentials from URLs before they are logged,
// printed or wrapped into an error. It holds no state and is safe for
// concurrent use.
package redact

import (
	"errors"
	"net/url"
	"strings"
)

// Mask replaces what is removed.
const Mask = "xxxxx"

// URL returns raw without its user information (user name and password)
// and with every query value masked, so that it can be logged. It also
// handles strings that do not parse as URLs: everything between "://" and
// the last "@" before the path is masked, and so is everything after "?".
func URL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if u.User != nil {
			u.User = url.User(Mask)
		}
		if u.RawQuery != "" {
			q := u.Query()
			for k := range q {
				q[k] = []string{Mask}
			}
			u.RawQuery = q.Encode()
		}
		u.Fragment, u.RawFragment = "", ""
		return u.String()
	}
	s := raw
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i] + "?" + Mask
	}
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			s = s[:i+3] + Mask + rest[at:]
		}
	}
	return s
}

// Error returns err with raw, wherever its text quotes it, replaced by
// URL(raw). A *url.Error, which quotes its URL, is replaced by the error it
// wraps. The result wraps what err wrapped, except the *url.Error itself.
func Error(err error, raw string) error {
	if err == nil {
		return nil
	}
	if ue, ok := errors.AsType[*url.Error](err); ok && ue.Err != nil {
		err = ue.Err
	}
	msg := err.Error()
	if raw == "" || !strings.Contains(msg, raw) {
		return err
	}
	return &redacted{msg: strings.ReplaceAll(msg, raw, URL(raw)), err: err}
}

// redacted is an error whose text was cleaned and which still wraps its
// cause for errors.Is and errors.As.
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
