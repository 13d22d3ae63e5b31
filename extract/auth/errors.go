package auth

import (
	"errors"
	"strings"
)

// Command is the CLI named in the fixes that errors suggest.
const Command = "contacts-etl"

// ErrCredentials is matched (errors.Is) by every error that means a
// location's credentials cannot work until a person or `auth reconnect`
// fixes them: no stored token, a refresh token the server refused, client
// credentials the server refused, a request refused twice with 401. Retrying
// the request does not help: stop the location and report the error's fix.
var ErrCredentials = errors.New("the location's credentials are unusable")

// AuthError is a request the API refused with 401 after the token was
// refreshed and the request replayed, or at once for a token that cannot be
// refreshed (static). It carries the diagnosis `check` gives. Its message
// never holds a token.
type AuthError struct {
	Location string // store key of the source; "" for a static token
	Status   int    // 401
	Message  string // the API's message, e.g. "Invalid JWT"
	TraceID  string
	// Scope: the API said the token lacks a scope the request needs.
	Scope  bool
	Static bool // a static token, never refreshed
	Fix    string
}

func (e *AuthError) Error() string {
	var b strings.Builder
	if e.Location != "" {
		b.WriteString("location " + e.Location + ": ")
	}
	switch {
	case e.Static:
		b.WriteString("the static token was refused")
	case e.Scope:
		b.WriteString("the token lacks a scope this request needs (refused again after a refresh)")
	default:
		b.WriteString("the token was refused again after a refresh (access revoked or app uninstalled?)")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.TraceID != "" {
		b.WriteString(" (trace " + e.TraceID + ")")
	}
	if e.Fix != "" {
		b.WriteString("; fix: " + e.Fix)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrCredentials) true.
func (e *AuthError) Unwrap() error { return ErrCredentials }

// fixes builds the commands that restore a source's access.
func (s *Source) authType() string {
	if s.company != nil || s.key == CompanyKey {
		return "agency"
	}
	return "oauth"
}

func (s *Source) locFlag() string {
	if s.key == CompanyKey {
		return ""
	}
	return " --locations " + s.key
}

func (s *Source) loginFix() string {
	return "run `" + Command + " auth login --auth " + s.authType() + s.locFlag() + "`"
}

func (s *Source) scopeFix() string {
	return "run `" + Command + " auth login --auth " + s.authType() + s.locFlag() + " --scopes <the optional scopes you need>` and approve every scope"
}

// reconnectFix is the fix of a lost or refused refresh token: reconnect
// when the client secret is at hand (no person needed), else log in.
func (s *Source) reconnectFix() string {
	if !s.canReconnect() {
		return s.loginFix()
	}
	return "run `" + Command + " auth reconnect --auth " + s.authType() + s.locFlag() + "` (or `auth login` if the app was uninstalled)"
}

func (s *Source) clientFix() string {
	return "check the OAuth client id and client secret the exporter is given; then `" + Command + " check`"
}

// diagnose turns a second 401 into an AuthError.
func (s *Source) diagnose(status int, msg, trace string) *AuthError {
	e := &AuthError{Location: s.key, Status: status, Message: msg, TraceID: trace}
	if strings.Contains(strings.ToLower(msg), "scope") {
		e.Scope, e.Fix = true, s.scopeFix()
	} else {
		e.Fix = s.loginFix()
	}
	return e
}
